#!/usr/bin/env bash
# Make a local stand-in of the official Debian slim image from Debian's packages, for machines that reach
# Debian's archive but no container registry (CI). Usage: debian-base.sh debian:12.15-slim
#
# debootstrap's minbase variant of the same release, trimmed the way the slim images are (no docs, man
# pages or locales; apt lists emptied). Its label says what it is.
set -euo pipefail
tag=$1
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.description=\"local stand-in for $tag: debootstrap --variant=minbase $suite, trimmed like slim\"" \
    --change "LABEL org.opencontainers.image.version=\"$(cat "$root/etc/debian_version")\"" \
    - "$tag" >/dev/null
echo "made $tag from $suite ($(cat "$root/etc/debian_version"))"
