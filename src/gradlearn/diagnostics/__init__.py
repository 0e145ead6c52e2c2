"""The practical guide, built in: gradient checking (and, later, sanity checks, lr search, plots)."""

from .gradcheck import GradcheckError, GradcheckReport, gradcheck

__all__ = ["gradcheck", "GradcheckReport", "GradcheckError"]
