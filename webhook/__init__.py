"""The validating admission webhook: AdmissionReview v1 over HTTPS (FastAPI + uvicorn)."""
