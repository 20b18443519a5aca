"""`jumpgate discover`: list SageMaker endpoints with boto3 and infer a config for them."""
