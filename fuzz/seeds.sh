#!/usr/bin/env bash
# Writes the starting corpus of each fuzz target into fuzz/seeds/<target>/
# (libFuzzer grows and `cargo fuzz cmin` shrinks it into fuzz/corpus/).
# Uses the tools the interop tests use (dosfstools, mtools, gdisk) and
# visorsim's own writers; every input is a few KiB to a few tens of KiB,
# in the target's encoding (the `fuzzing` module of the owning crate).
# Usage: fuzz/seeds.sh [target...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gpt fat bootcfg gzip state_tgz scenario check_volume)

# The used prefix of an image: up to its last non-zero sector.
used_prefix() { # file sector_bytes
  python3 - "$1" "$2" <<'PY'
import sys
path, ss = sys.argv[1], int(sys.argv[2])
data = open(path, 'rb').read()
end = len(data.rstrip(b'\0'))
end = -(-end // ss) * ss
sys.stdout.buffer.write(data[:end])
PY
}

# A FAT volume seed: flags, the partition's sectors, the volume's used prefix.
fat_seed() { # name flags sectors image sector_bytes
  { python3 -c 'import sys; sys.stdout.buffer.write(bytes([int(sys.argv[1])]) + int(sys.argv[2]).to_bytes(4, "little"))' "$2" "$3"
    used_prefix "$4" "$5"; } > "seeds/fat/$1"
}

fill_fat() { # image
  printf 'bootstate=0\ntitle=Loading VMware ESXi\ntimeout=5\nprefix=\nkernel=b.b00\nkernelopt=no-auto-partition\nmodules=k.b00 --- s.v00 --- state.tgz\nbuild=6.7.0-1.0.8169922\nupdated=1\n' > "$work/boot.cfg"
  head -c 3000 /dev/urandom > "$work/s.v00"
  printf 'x' > "$work/k.b00"
  mcopy -i "$1" "$work/boot.cfg" "$work/s.v00" "$work/k.b00" ::/
  mmd -i "$1" ::/var ::/var/db
  printf 'a long-named file\n' > "$work/state.tgz.12345"
  mcopy -i "$1" "$work/state.tgz.12345" ::/var/db/
}

for t in "${targets[@]}"; do
  mkdir -p "seeds/$t"
  case "$t" in
  gpt)
    # Small GPT disks (16 sectors, 4 entries) written here byte by byte, as
    # visorsim reads them; flags bit 1 (the target recomputes the CRCs
    # after mutation) set on some.
    python3 - <<'PY'
import struct, uuid, zlib
def disk(ss, sectors, entries=4):
    img = bytearray(ss * sectors)
    # Protective MBR.
    img[446:462] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack('<II', 1, min(sectors - 1, 0xFFFFFFFF))
    img[510:512] = b'\x55\xaa'
    array = bytearray(entries * 128)
    parts = [(uuid.UUID('C12A7328-F81F-11D2-BA4B-00A0C93EC93B'), 4, 5, 'EFI'),
             (uuid.UUID('EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'), 6, 9, 'bootbank')]
    for i, (kind, first, last, name) in enumerate(parts):
        e = kind.bytes_le + uuid.UUID(int=i + 1).bytes_le + struct.pack('<QQQ', first, last, 0)
        array[i * 128:i * 128 + 128] = e + name.encode('utf-16-le').ljust(72, b'\0')
    array_sectors = -(-len(array) // ss)
    def header(my, alt, entries_lba):
        h = bytearray(b'EFI PART' + struct.pack('<IIII', 0x10000, 92, 0, 0))
        h += struct.pack('<QQQQ', my, alt, 2 + array_sectors, sectors - 2 - array_sectors)
        h += uuid.UUID(int=42).bytes_le + struct.pack('<QIII', entries_lba, entries, 128, zlib.crc32(array))
        h[16:20] = struct.pack('<I', zlib.crc32(h))
        return h.ljust(ss, b'\0')
    img[ss:2 * ss] = header(1, sectors - 1, 2)
    img[2 * ss:2 * ss + len(array)] = array
    last = sectors - 1
    img[(last - array_sectors) * ss:(last - array_sectors) * ss + len(array)] = array
    img[last * ss:] = header(last, 1, last - array_sectors)
    return bytes(img)
open('seeds/gpt/esxi-like-512', 'wb').write(b'\x00' + disk(512, 16))
open('seeds/gpt/esxi-like-512-crc', 'wb').write(b'\x02' + disk(512, 16))
open('seeds/gpt/esxi-like-4kn-crc', 'wb').write(b'\x03' + disk(4096, 12))
open('seeds/gpt/mbr-only', 'wb').write(b'\x00' + disk(512, 16)[:512])
PY
    ;;
  fat)
    mkfs.fat -F 16 -s 1 -R 1 -f 2 -r 16 -C "$work/f16.img" 2100 >/dev/null
    fill_fat "$work/f16.img"
    fat_seed fat16-512 0 4200 "$work/f16.img" 512
    mkfs.fat -F 12 -s 1 -R 1 -f 2 -r 16 -C "$work/f12.img" 600 >/dev/null
    fill_fat "$work/f12.img"
    fat_seed fat12-512 0 0 "$work/f12.img" 512
    mkfs.fat -F 16 -S 4096 -s 1 -R 1 -f 1 -r 128 -C "$work/f4k.img" 16800 >/dev/null
    fill_fat "$work/f4k.img"
    fat_seed fat16-4kn 1 4200 "$work/f4k.img" 4096
    ;;
  check_volume)
    # The same volumes as the fat target (the same encoding).
    [ -n "$(ls -A seeds/fat 2>/dev/null)" ] || ./seeds.sh fat >/dev/null
    cp seeds/fat/* seeds/check_volume/
    ;;
  bootcfg)
    # The rendered boot.cfg and the parser/writer cases of
    # docs/bootloader.md (boot.cfg, The bootstate writer).
    python3 - <<'PY'
base = ("bootstate=0\ntitle=Loading VMware ESXi\ntimeout=5\nprefix=\nkernel=b.b00\n"
        "kernelopt=no-auto-partition\nmodules=k.b00 --- s.v00 --- state.tgz\nbuild=6.7.0-1.0.8169922\nupdated=1\n")
cases = {
    "rendered": base,
    "spaces-around-equals": base.replace("bootstate=0", "bootstate = 3"),
    "abbreviated": "boot=1\nbootstat=1\nb=7.0\nUP=3\nq=1\n",
    "two-bootstate-lines": "bootstate=0\nbuild=6.7\nupdated=2\nbootstate=1\n",
    "past-512": "#" * 501 + "\nbootstate=1\nupdated=1\nbuild=6\n",
    "bom": "\ufeffbootstate=3\nupdated=1\n",
    "comment-after-value": "bootstate=0 # c\n",
    "crlf-tabs": "build=6.7\r\nupdated=\t2\r\n\tbootstate=1\r\n",
    "mboot-options": ("kernel=/b.b00\nprefix=/boot//x\nmodules=a.gz opt=1 --- /abs.gz ---  --- c.gz\n"
                      "timeout=-1\nerrtimeout=3\nskip=0\nnorts=1\nruntimewdtimeout=99999999999999999999\n"),
    "nul-and-cr": "build=6.7\0garbage\nbootstate=2\rtitle=x\n",
}
for name, text in cases.items():
    open("seeds/bootcfg/" + name, "wb").write(text.encode("utf-8"))
PY
    ;;
  gzip)
    # Module files: gzip with each header field, pigz-style sync-flush
    # points, the empty module, a lying ISIZE, an uncompressed file.
    python3 - <<'PY'
import gzip, struct, zlib
def deflate(data, flush_every=None):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = b""
    step = flush_every or len(data) or 1
    for i in range(0, len(data), step):
        out += c.compress(data[i:i + step])
        if flush_every:
            out += c.flush(zlib.Z_SYNC_FLUSH)
    return out + c.flush()
def gz(data, flags=0, extra=b"", name=b"", comment=b"", body=None, isize=None, crc=None):
    head = bytes([0x1F, 0x8B, 8, flags]) + struct.pack("<I", 0) + b"\x00\x03"
    if flags & 4:
        head += struct.pack("<H", len(extra)) + extra
    if flags & 8:
        head += name + b"\0"
    if flags & 16:
        head += comment + b"\0"
    if flags & 2:
        head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    body = deflate(data) if body is None else body
    crc = zlib.crc32(data) if crc is None else crc
    return head + body + struct.pack("<II", crc, len(data) if isize is None else isize)
text = b"".join(b"line %d of a module\n" % i for i in range(200))
seeds = {
    "plain": gz(text),
    "all-fields": gz(text, flags=0x1E, extra=b"AB\x02\x00xy", name=b"s.v00", comment=b"visorsim"),
    "sync-flush": gz(text * 4, body=deflate(text * 4, flush_every=1500)),
    "empty": gz(b""),
    "isize-larger": gz(text, isize=len(text) + 1000),
    "isize-smaller": gz(text, isize=100),
    "bad-crc": gz(text, crc=1),
    "uncompressed": b"\x7fELF not a gzip file",
    "stored-block": gz(text[:300], body=bytes([1]) + struct.pack("<HH", 300, 300 ^ 0xFFFF) + text[:300]),
}
for name, data in seeds.items():
    open("seeds/gzip/" + name, "wb").write(data)
PY
    ;;
  state_tgz)
    # state.tgz as backup.sh writes it (mode 0), the tar inside local.tgz
    # (mode 1) and the tar inside state.tgz (mode 2), in ustar, GNU and pax
    # forms.
    python3 - <<'PY'
import gzip, io, tarfile
def tar(members, fmt):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data.decode()
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return b.getvalue()
etc = [("etc", b"", "dir"), ("etc/hosts", b"127.0.0.1 localhost\n", "file"),
       ("etc/vmware", b"", "dir"), ("etc/vmware/esx.conf", b"/adv/Misc/HostName = \"esxi-07\"\n", "file")]
long = [("etc/" + "d" * 120 + "/" + "f" * 150, b"long", "file"), ("./etc/shadow", b"root:x:0\n", "file")]
local = gzip.compress(tar(etc, tarfile.USTAR_FORMAT), mtime=0)
outer = tar([("local.tgz", local, "file")], tarfile.USTAR_FORMAT)
seeds = {
    "state-tgz": b"\x00" + gzip.compress(outer, mtime=0),
    "local-tar-ustar": b"\x01" + tar(etc, tarfile.USTAR_FORMAT),
    "local-tar-gnu-long": b"\x01" + tar(long, tarfile.GNU_FORMAT),
    "local-tar-pax": b"\x01" + tar(long + [("etc/pax\u00e9", b"x", "file")], tarfile.PAX_FORMAT),
    "local-tar-symlink": b"\x01" + tar([("etc/link", b"/etc/shadow", "symlink")], tarfile.USTAR_FORMAT),
    "outer-tar": b"\x02" + outer,
}
for name, data in seeds.items():
    open("seeds/state_tgz/" + name, "wb").write(data)
PY
    ;;
  scenario)
    # The repository's scenario files (they use every step) under 4 KiB.
    find ../scenarios -name '*.json' -size -4k | sort | while read -r f; do
      cp "$f" "seeds/scenario/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    ;;
  esac
done
ls -l seeds/*/ | head -40
