"""Reasons per lead for the API: leadml's Explainer, with the logistic arithmetic compiled.

`Explainer.contributions` for a logistic model runs the fitted ColumnTransformer (a few ms a
call, mostly scipy dispatch). The compiled logistic head of the fast path already splits the
decision function into one additive share per prepared column, so the same contributions are
`shares(lead) - shares(typical lead)` summed per field. They are checked against the Explainer's
own on sample leads when the model loads; any difference above 1e-9 keeps the Explainer's path.
LightGBM contributions are exact TreeSHAP from the booster and are used as they are.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from api.fastpath import LinearHead
from leadml.explain import Explainer, FloatMatrix

TOLERANCE = 1e-9


class CompiledExplainer(Explainer):
    """An Explainer whose logistic contributions come from the compiled head when attached."""

    _compiled: LinearHead | None = None

    def attach(self, head: LinearHead, sample: FloatMatrix) -> float:
        """Use `head` for contributions if it agrees with the Explainer on `sample` (prepared
        leads); returns the largest difference. Raises ValueError when it does not agree."""
        if self.kind != "logistic":
            raise ValueError("only logistic contributions are compiled")
        typical = head.per_column(self.typical_lead()[None, :])[0]
        owners = np.asarray(self.column_fields, dtype=int)
        to_fields = np.zeros((len(owners), len(self.fields)))
        to_fields[np.arange(len(owners)), owners] = 1.0
        expected = super().contributions(sample)
        got = (head.per_column(np.atleast_2d(sample)) - typical) @ to_fields
        worst = float(np.max(np.abs(got - expected), initial=0.0))
        if not worst <= TOLERANCE:
            raise ValueError(f"compiled contributions differ by {worst:.3g}")
        self._compiled, self._typical, self._to_fields_matrix = head, typical, to_fields
        return worst

    def contributions(self, matrix: npt.ArrayLike) -> FloatMatrix:
        if self._compiled is None:
            return super().contributions(matrix)
        X = np.atleast_2d(np.asarray(matrix, dtype=float))
        shares = self._compiled.per_column(X) - self._typical
        return np.asarray(shares @ self._to_fields_matrix, dtype=float)
