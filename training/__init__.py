"""Training: training sets from the feature store, XGBoost, evaluation, MLflow registration."""
