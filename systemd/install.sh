#!/bin/sh
# Install lineside on a gateway: the package into /opt/lineside/venv, the systemd unit,
# and an example config in /etc/lineside (never overwriting one that exists).
# Run as root from a checkout or an unpacked release:  sudo sh systemd/install.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/lineside
python=${PYTHON:-python3}

[ "$(id -u)" = 0 ] || { echo "run as root (sudo sh systemd/install.sh)" >&2; exit 1; }
"$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
    || { echo "lineside needs Python 3.11 or newer as $python" >&2; exit 1; }

echo "installing lineside into $prefix/venv"
[ -x "$prefix/venv/bin/python" ] || "$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
"$prefix/venv/bin/python" -m pip install --quiet "$here"
mkdir -p "$prefix/docs"
cp -r "$here/docs/." "$prefix/docs/"

# The service's own system user: it reads /etc/lineside (group) and owns its state;
# dialout opens serial ports.
if ! id lineside >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/lineside --no-create-home \
        --shell /usr/sbin/nologin --groups dialout lineside
fi

install -d -m 0750 -o root -g lineside /etc/lineside
if [ ! -e /etc/lineside/lineside.yaml ]; then
    sed 's#^  data_dir: .*#  data_dir: /var/lib/lineside#' "$here/config/example.yaml" \
        > /etc/lineside/lineside.yaml
    chown root:lineside /etc/lineside/lineside.yaml
    chmod 0640 /etc/lineside/lineside.yaml
    echo "example config written to /etc/lineside/lineside.yaml: edit it, then"
    echo "  $prefix/venv/bin/lineside check -c /etc/lineside/lineside.yaml"
else
    echo "kept the existing /etc/lineside/lineside.yaml"
fi

install -m 0644 "$here/systemd/lineside.service" /etc/systemd/system/lineside.service
systemctl daemon-reload
echo "installed. Start it with: systemctl enable --now lineside"
echo "then watch it with:       journalctl -u lineside -f   and   $prefix/venv/bin/lineside status -c /etc/lineside/lineside.yaml"
