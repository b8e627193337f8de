#!/usr/bin/env bash
# Installs the external decompressors `visorsim bench` runs side by side with
# visorsim, and the tools of its explore comparison:
#
#   Debian: libdeflate-tools (libdeflate-gunzip), pigz, gzip, isal (igzip),
#           dosfstools (fsck.fat), mtools (mtype)
#   PyPI:   rapidgzip (not packaged in Debian 12), zlib-ng (python-zlib-ng:
#           `python3 -m zlib_ng.gzip_ng`; Debian 12 has no zlib-ng tool),
#           isal (`python3 -m isal.igzip`, used only when Debian's igzip is absent)
#
# What cannot be installed is reported; `visorsim bench` then lists it as
# missing. Run as root, or with sudo available.
set -uo pipefail

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
debs=(libdeflate-tools pigz gzip isal dosfstools mtools)
echo "== apt-get install ${debs[*]}"
if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${debs[@]}" >/dev/null; then
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${debs[@]}" >/dev/null \
    || echo "warning: some Debian packages did not install" >&2
fi

pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then
  pip_cmd=(pip3)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  pip_cmd=(python3 -m pip)
fi
if [ ${#pip_cmd[@]} -eq 0 ]; then
  echo "warning: no pip: rapidgzip, zlib-ng and isal (PyPI) not installed" >&2
else
  echo "== ${pip_cmd[*]} install rapidgzip zlib-ng isal"
  # Debian's own Python refuses system-wide installs (PEP 668) unless told.
  "${pip_cmd[@]}" install -q rapidgzip zlib-ng isal 2>/dev/null \
    || "${pip_cmd[@]}" install -q --break-system-packages rapidgzip zlib-ng isal \
    || echo "warning: the PyPI packages did not install" >&2
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi

echo "== found"
for tool in libdeflate-gunzip rapidgzip igzip pigz gzip fsck.fat mtype; do
  printf '  %-18s %s\n' "$tool" "$(command -v "$tool" || echo missing)"
done
if python3 -c 'import zlib_ng' 2>/dev/null; then echo "  zlib-ng            python3 -m zlib_ng.gzip_ng"; else echo "  zlib-ng            missing"; fi
