# GPU deployment: vLLM's CUDA runtime image plus this package, serving the embedded model.
#   docker build -t rlvr-runtime .
#   docker run --gpus all -p 50051:50051 -p 9090:9090 -v rlvr-state:/state rlvr-runtime
FROM vllm/vllm-openai:v0.32.0

WORKDIR /opt/rlvr
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY rl_loop ./rl_loop
COPY clients ./clients
COPY rlvr ./rlvr
COPY proto ./proto
COPY models ./models

# vLLM (CUDA) and torch come with the base image; install only this package's other pins.
RUN pip install --no-cache-dir -e .

# gRPC API and Prometheus /metrics
EXPOSE 50051 9090
VOLUME /state
ENTRYPOINT ["rlvr", "serve", "--host", "0.0.0.0", "--port", "50051", "--metrics-port", "9090", "--state-dir", "/state"]
