#!/bin/sh
# The broker tests need Debian's mosquitto. Install it where we can (root with
# apt-get); otherwise say in one line how to, and let the tests fail loudly.
command -v mosquitto >/dev/null 2>&1 && exit 0
[ -x /usr/sbin/mosquitto ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing mosquitto (needed by the broker tests)..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null 2>&1; }
    # Debian starts a system broker on 1883; the tests start their own.
    command -v systemctl >/dev/null 2>&1 && systemctl disable --now mosquitto >/dev/null 2>&1
    exit 0
fi
echo "mosquitto is missing: run 'sudo apt-get install mosquitto' (the broker tests will fail without it)" >&2
exit 0
