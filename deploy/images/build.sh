#!/usr/bin/env bash
# Build every digits image (`make images`): the gateway, TorchServe (CPU torch by default here, CUDA with
# TORCH_VARIANT=cuda), the load balancer, and Prometheus from Debian's package for CI.
#
# Works offline. When the Debian base cannot be pulled (no registry reachable), it is made here from
# Debian's packages with debootstrap and tagged with the base's name; README "Deploy" says so.
# Starts dockerd (as root) when no engine answers.
set -euo pipefail
cd "$(dirname "$0")/../.."

base=$(sed -n 's/^ARG BASE_IMAGE=//p' deploy/Dockerfile)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
torch_variant=${TORCH_VARIANT:-cpu}
export DOCKER_BUILDKIT=0

deploy/images/dockerd.sh

if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
    echo "$base cannot be pulled: making it from Debian packages (debootstrap)"
    deploy/images/debian-base.sh "$base"
fi

# Offline extras for the builders' pip (deploy/local-build/README.md): the CA bundle pip trusts here, and
# the CPU torch wheel when it lies on this machine's disk.
extras=deploy/local-build
rm -rf "$extras/wheels" "$extras/ca.crt"
mkdir -p "$extras/wheels"
cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
[ -n "$cert" ] && [ -s "$cert" ] && cp "$cert" "$extras/ca.crt"
torch_version=$(sed -n 's/^ARG TORCH_VERSION=//p' deploy/Dockerfile)
for dir in ${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true); do
    find "$dir" -maxdepth 1 -name "torch-${torch_version}+cpu-*.whl" -exec cp {} "$extras/wheels/" \; 2>/dev/null || true
done

# With the wheel here, PyPI stands in for the CPU index (which this network may not reach): it serves no
# +cpu build, so the local wheel is what pip takes.
cpu_index=()
if compgen -G "$extras/wheels/torch-*.whl" >/dev/null; then
    cpu_index=(--build-arg TORCH_CPU_INDEX_URL=https://pypi.org/simple)
fi

logs=${IMAGE_BUILD_LOGS:-logs/images}
mkdir -p "$logs"
build() {  # tag, then docker build arguments
    local tag=$1; shift
    local started=$SECONDS log="$logs/${tag//[:\/]/_}.log"
    if ! docker build -t "$tag" "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "building $tag failed; whole log: $log" >&2
        exit 1
    fi
    printf '%-40s %5d s  %s\n' "$tag" $((SECONDS - started)) "$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}

build "digits-gateway:$version" -f deploy/Dockerfile --target gateway "${cpu_index[@]}" .
torchserve_tag="digits-torchserve:$version$([ "$torch_variant" = cpu ] && echo -cpu)"
build "$torchserve_tag" -f deploy/Dockerfile --target torchserve \
    --build-arg "TORCH_VARIANT=$torch_variant" "${cpu_index[@]}" .
build "digits-loadbalancer:$version" --build-arg "BASE_IMAGE=$base" deploy/loadbalancer
build "digits-prometheus-debian:$version" --build-arg "BASE_IMAGE=$base" deploy/prometheus/debian
