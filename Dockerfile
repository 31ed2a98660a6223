# GPU deployment: vLLM's CUDA runtime image (Python 3.12, its own vLLM 0.32.0 and CUDA torch)
# plus this package.
#
#   docker build -t rlvr-runtime .
#
# Serve the embedded model (models/tiny-reasoner), gRPC on 50051, Prometheus /metrics on 9090,
# weight versions and traces in the `rlvr-state` volume:
#
#   docker run --gpus all -p 50051:50051 -p 9090:9090 -v rlvr-state:/state rlvr-runtime
#
# Serve your own model from a mounted folder (a Hugging Face model folder: config.json, the
# tokenizer and *.safetensors), training on; any `rlvr serve` flag can follow the image name:
#
#   docker run --gpus all -p 50051:50051 -p 9090:9090 \
#       -v /path/to/model:/model -v rlvr-state:/state rlvr-runtime --model /model --train on
#
# Use one state volume per model: its checkpoints are versions of the model it was made with.
#
# The `code` verifier's sandbox (bubblewrap, else `unshare -n`; both installed below) creates
# Linux namespaces, which Docker's default profile does not allow; without them every `code`
# answer scores 0. If you serve code-verified traffic, give the container that permission (for
# example `--cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt
# apparmor=unconfined`; not tested here) and check `rlvr ask --verify code:...` once. The other
# verifiers (numeric, exact, choice, math; all the embedded task families) need nothing extra.
FROM vllm/vllm-openai:v0.32.0

# The code verifier's sandbox: bubblewrap, and setpriv/unshare from util-linux (to drop to uid
# `nobody`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux \
    && rm -rf /var/lib/apt/lists/* \
    && command -v bwrap && command -v setpriv && command -v unshare

WORKDIR /opt/rlvr
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY rl_loop ./rl_loop
COPY clients ./clients
COPY rlvr ./rlvr
COPY proto ./proto
COPY models ./models

# vLLM (CUDA) and torch come with the base image: no `cpu`/`gpu` extra, and the image's own
# vllm/torch builds are pinned as constraints so pip fails loudly instead of replacing them.
# The other pins agree with vllm 0.32.0's requirements (transformers>=5.16.1,<5.20.0,
# tokenizers>=0.23.2, safetensors>=0.6.2, protobuf>=5.29.6, prometheus_client>=0.18).
# (`pip list --format=freeze` prints name==version even for packages installed from a file.)
RUN python3 -m pip list --format=freeze | grep -iE '^(vllm|torch|torchvision|torchaudio)==' \
        > /tmp/keep.txt \
    && grep -qi '^vllm==' /tmp/keep.txt && cat /tmp/keep.txt \
    && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir -c /tmp/keep.txt -e . \
    && rm /tmp/keep.txt \
    && python3 -c "import vllm, transformers.models.qwen2.modeling_qwen2, runtime.config" \
    && rlvr --help > /dev/null

# gRPC API and Prometheus /metrics
EXPOSE 50051 9090
VOLUME /state
ENTRYPOINT ["rlvr", "serve", "--host", "0.0.0.0", "--port", "50051", "--metrics-port", "9090", "--state-dir", "/state"]
