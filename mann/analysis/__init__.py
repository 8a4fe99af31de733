"""What analyses a trained learner, beside the learners (mann.meta) and the scoring of
test tasks (mann.evaluation): curvature (gradient norms, top Hessian eigenvalues), why
adaptation diverges (stability), fine-tuning far past the trained steps
(long_adaptation), representations (CKA) and adaptation curves (adaptation). Imported by
module: `from mann.analysis import curvature`."""

__all__: list[str] = []
