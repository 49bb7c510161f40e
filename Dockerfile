# The serving image: official TensorFlow Serving with the exported models baked in.
# Build after `dann-serve export` has filled models/:  docker build -t dann-serve .
# The tag's X.Y must equal the project's tensorflow (tests/test_serving_image.py checks it).
FROM tensorflow/serving:2.21.0

# A user of its own: the server only reads /models and listens on ports above 1024.
# A numeric UID lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 serving \
    && useradd --system --no-log-init --uid 10001 --gid serving \
        --home-dir /nonexistent --shell /usr/sbin/nologin serving

# models.config (and canary.config), the batching and monitoring configs, and
# models/<name>/<version>/; owned by root, so the server cannot change its models.
COPY models/ /models/

USER 10001:10001

# 8500 gRPC (tensorflow.serving.PredictionService), 8501 REST (/v1/models/...) and
# Prometheus metrics (/monitoring/prometheus/metrics, from models/monitoring.config).
EXPOSE 8500 8501

# Healthy once a version is AVAILABLE: GetModelMetadata needs a loaded version, so it
# answers 404 while the model loads or after its load failed, where GET /v1/models/dann
# answers 200. The image has neither curl nor wget; bash's /dev/tcp sends the request.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8501 && printf 'GET /v1/models/dann/metadata HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# The project's flags in ENTRYPOINT, none in CMD: `docker run IMAGE --some_flag` appends
# to them, as the official image's entrypoint script appends "$@" to its own; given
# twice, a flag takes its last value (--model_config_file=/models/canary.config).
# TensorFlow Serving checks a config's version labels before it has loaded anything, so
# without --allow_version_labels_for_unavailable_models a config with labels
# (canary.config, or one `dann-serve promote` wrote) stops it at start-up.
ENTRYPOINT ["tensorflow_model_server", \
            "--port=8500", \
            "--rest_api_port=8501", \
            "--model_config_file=/models/models.config", \
            "--model_config_file_poll_wait_seconds=60", \
            "--enable_batching=true", \
            "--batching_parameters_file=/models/batching_parameters.txt", \
            "--monitoring_config_file=/models/monitoring.config", \
            "--enable_model_warmup=true", \
            "--allow_version_labels_for_unavailable_models=true"]
CMD []
