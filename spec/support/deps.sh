#!/bin/sh
# Installs the Debian packages the build, the specs and the demo need, when any
# is missing. Debian 12; apt-get as root (or through sudo).
set -e
# lua5.1 and its headers are what `luarocks --lua-version=5.1 make` builds the rock with.
pkgs="gcc make pkg-config lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev
      libcurl4-openssl-dev lua-cjson lua-busted luarocks lua5.1 liblua5.1-0-dev
      binutils nginx libnginx-mod-http-lua openssl curl locales python3 $EXTRA_PACKAGES"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# luajit2 (OpenResty's branch, the one nginx's Lua module links) replaces plain luajit
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
