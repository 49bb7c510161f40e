# The serving image: official TensorFlow Serving with the exported models baked in.
# Build after `dann-serve export` has filled models/:  docker build -t dann-serve .
# The tag's X.Y must equal the project's tensorflow (tests/test_serving_image.py checks it).
FROM tensorflow/serving:2.21.0

# models.config, the batching and monitoring configs, and models/<name>/<version>/.
COPY models/ /models/

# 8500 gRPC (tensorflow.serving.PredictionService), 8501 REST (/v1/models/...).
EXPOSE 8500 8501

ENTRYPOINT ["tensorflow_model_server"]
CMD ["--port=8500", \
     "--rest_api_port=8501", \
     "--model_config_file=/models/models.config", \
     "--model_config_file_poll_wait_seconds=60", \
     "--enable_batching=true", \
     "--batching_parameters_file=/models/batching_parameters.txt", \
     "--monitoring_config_file=/models/monitoring.config", \
     "--enable_model_warmup=true"]
