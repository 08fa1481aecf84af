#!/usr/bin/env bash
# Build, run and smoke-test the cityseg images with podman, on a machine without a registry.
#
#   scripts/container.sh base                 # debootstrap a local debian:bookworm-slim (once)
#   scripts/container.sh build lean|full MODEL  # bake MODEL (.onnx/.tflite + sidecar, or a run)
#   scripts/container.sh run lean|full [PORT]   # start it detached, wait for /health, print time
#   scripts/container.sh smoke lean|full MODEL  # build + run + POST a real image, check the mask
#
# The flags are the recipe measured on these machines: rootful podman with the runc runtime
# (the default crun trips on hybrid cgroups), host networking (registries reached through the
# host) and explicit rlimits (the defaults exceed what the sandbox grants).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="debian:bookworm-slim"
STAGE=".container"  # gitignored: the model being baked and the rootfs tarball
FLAGS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
PODMAN=(podman --runtime runc)

need_tools() {
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
     || ! command -v debootstrap >/dev/null; then
    apt-get install -y podman runc debootstrap
  fi
}

base() {
  need_tools
  if podman image exists "$BASE_IMAGE"; then
    echo "base: $BASE_IMAGE already present"; return
  fi
  local dir; dir=$(mktemp -d /tmp/bookworm-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian
  # What debian:bookworm-slim drops: the downloaded packages, apt lists, docs, man pages and
  # translations (40 + 33 MB here).
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
         "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
         "$dir"/usr/share/locale/* "$dir"/usr/share/info/*
  tar -C "$dir" -c . | podman import - "$BASE_IMAGE"
  rm -rf "$dir"
}

stage_model() {  # copy MODEL (an exported file with its sidecar, or a run folder) into $STAGE/model
  local model=$1
  rm -rf "$STAGE/model"; mkdir -p "$STAGE/model"
  if [[ -d $model ]]; then
    cp -r "$model"/. "$STAGE/model/"
  elif [[ -f $model ]]; then
    cp "$model" "$STAGE/model/"
    if [[ -f $model.json ]]; then cp "$model.json" "$STAGE/model/"; fi
  else
    echo "container.sh: model not found: $model" >&2; exit 1
  fi
}

model_arg() {  # the path CITYSEG_RUN points at inside the image
  local model=$1
  if [[ -d $model ]]; then echo "/srv/model"; else echo "/srv/model/$(basename "$model")"; fi
}

build() {
  local target=${1:?lean or full} model=${2:?path to an exported model or a run folder}
  base
  stage_model "$model"
  local uv_cache=${UV_CACHE_DIR:-$HOME/.cache/uv} extra=()
  # Reuse the host's uv cache when there is one: same wheels, minutes less downloading.
  if [[ -d $uv_cache ]]; then extra+=(--volume "$uv_cache:/root/.cache/uv"); fi
  # A proxy that re-signs TLS (as here) needs its CA inside the build too.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    extra+=(--volume /usr/local/share/ca-certificates:/run/extra-ca:ro
            --build-arg EXTRA_CA_DIR=/run/extra-ca)
  fi
  local started=$SECONDS
  # --format docker: the OCI format has no HEALTHCHECK, podman would drop it.
  "${PODMAN[@]}" build --format docker --network host "${FLAGS[@]}" "${extra[@]}" \
    --target "$target" --build-arg "MODEL=$(model_arg "$model")" \
    -t "cityseg:$target" .
  echo "built cityseg:$target in $((SECONDS - started)) s"
  podman image inspect "cityseg:$target" --format "size {{.Size}} bytes"
}

run() {
  local target=${1:?lean or full} port=${2:-8080} name="cityseg-$1"
  "${PODMAN[@]}" rm -f "$name" >/dev/null 2>&1 || true
  local t0; t0=$(date +%s.%N)
  local env=(-e CITYSEG_PORT="$port" -e CITYSEG_API_KEY="${CITYSEG_API_KEY:-smoke-test-key}")
  # CITYSEG_RUNTIME=keras makes the full image serve its Keras model rather than an export.
  if [[ -n ${CITYSEG_RUNTIME:-} ]]; then env+=(-e CITYSEG_RUNTIME="$CITYSEG_RUNTIME"); fi
  "${PODMAN[@]}" run -d --name "$name" --network host "${FLAGS[@]}" "${env[@]}" \
    "cityseg:$target" >/dev/null
  local wait_s=${HEALTH_TIMEOUT_S:-300} deadline=$((SECONDS + ${HEALTH_TIMEOUT_S:-300}))
  while ((SECONDS < deadline)); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      python3 -c "import sys; print(f'healthy in {float(sys.argv[2]) - float(sys.argv[1]):.2f} s')" \
        "$t0" "$(date +%s.%N)"
      return
    fi
    sleep 0.1
  done
  "${PODMAN[@]}" logs "$name" | tail -20
  echo "container.sh: $name not healthy after $wait_s s" >&2; exit 1
}

smoke() {
  local target=${1:?lean or full} model=${2:?model} port=${3:-8080}
  build "$target" "$model"
  CITYSEG_API_KEY=smoke-test-key run "$target" "$port"
  local image="$STAGE/smoke.png" mask="$STAGE/smoke_mask_$target.png"
  python3 - "$image" <<'PY'
import sys, zlib, struct
# A 320x160 street-like PNG (sky over road) written with the standard library only.
w, h = 320, 160
rows = b"".join(b"\x00" + bytes((110, 150, 200) if y < h // 2 else (90, 80, 90)) * w for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
  local code
  code=$(curl -sS -o "$mask" -w "%{http_code}" -H "X-API-Key: smoke-test-key" \
    -H "Content-Type: image/png" --data-binary "@$image" \
    "http://127.0.0.1:$port/v1/segment?format=categories")
  local unauth json="$STAGE/smoke_$target.json"
  unauth=$(curl -sS -o /dev/null -w "%{http_code}" -H "Content-Type: image/png" \
    --data-binary "@$image" "http://127.0.0.1:$port/v1/segment")
  curl -sS -o "$json" -H "X-API-Key: smoke-test-key" -H "Content-Type: image/png" \
    --data-binary "@$image" "http://127.0.0.1:$port/v1/segment?format=json"
  # The image's own HEALTHCHECK, run once by hand (timers need systemd, absent here).
  local health=ok
  "${PODMAN[@]}" healthcheck run "cityseg-$target" >/dev/null 2>&1 || health=failed
  "${PODMAN[@]}" rm -f "cityseg-$target" >/dev/null
  python3 - "$mask" "$code" "$unauth" "$json" "$health" <<'PY'
import json, sys, struct
mask, code, unauth, answer, health = sys.argv[1:6]
data = open(mask, "rb").read()
assert code == "200", f"POST /v1/segment answered {code}: {data[:200]!r}"
assert unauth == "401", f"POST without the key answered {unauth}, not 401"
assert data[:8] == b"\x89PNG\r\n\x1a\n", "the answer is not a PNG"
w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
assert (w, h, depth, colour) == (320, 160, 8, 0), (w, h, depth, colour)
body = json.load(open(answer))
shares = sum(c["share"] for c in body["categories"])
assert (body["width"], body["height"]) == (320, 160) and abs(shares - 1) < 1e-6, body
assert health == "ok", "the image's HEALTHCHECK failed"
print(f"smoke: 200 with a {w}x{h} category mask and its JSON analysis, 401 without the key, "
      f"HEALTHCHECK ok, model {body['model']}")
PY
}

case ${1:-} in
  base) base ;;
  build) shift; build "$@" ;;
  run) shift; run "$@" ;;
  smoke) shift; smoke "$@" ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
