"""The code MLflow runs to load a custscore model as a pyfunc ("models from code").

MLflow copies this file beside the model file when a version is logged. custscore itself
never runs it: scoring reads the model file directly (pipelines/tracking.load_champion).
"""

from mlflow.models import set_model

from pipelines.model_pyfunc import CustscorePyfunc

set_model(CustscorePyfunc())
