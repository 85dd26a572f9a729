#!/usr/bin/env python3
"""Independent checker for the hhtld conformance vectors.

Written from spec/hhtld.md alone, with only the Python standard library, to
show that the spec is enough to read an hhtld file. For every vector in
spec/vectors/valid it parses and validates the file, checks every CRC,
rebuilds the spec-defined fields of `hhtld inspect --json --verify` and
compares them with the committed X.json, and decodes every row of every
PALETTE tensor (and every float RAW tensor) bit-exactly against X.rows.json.
For every vector in spec/vectors/invalid it checks that the file is rejected
for the rule named on the second line of X.expected: at open, or, when the
third line says `verify`, by verification (open accepts it). For every vector in
spec/vectors/guarded it checks that the file is valid and that exactly the
tensors listed in X.expected decode (as f32) to more than the default
expansion limit allows (spec section 7); valid vectors must all be within it.

Exit status is non-zero on any disagreement.
"""

import json
import math
import struct
import sys
import zlib
from pathlib import Path

# Limits, spec section 6.
MAX_PALETTE_K = 256
SLOT_L_DIMS = 8
MAX_STAGES = 4
MAX_DIMS = 8
MAX_NAME_LEN = 4096
MAX_TENSORS = 1_048_576
MAX_PALETTES = 1_048_576
MAX_SECTIONS = 8_388_608
MAX_DIRECTORY_BYTES = 268_435_456
MAX_PALETTE_D = 65_536
MAX_METADATA_BYTES = 16_777_216
# Expansion limit, spec section 7: a whole-tensor decode may produce at most
# this many times the file's length in bytes.
DEFAULT_MAX_EXPANSION = 1024

MAGIC = b"\x89HHTLD\r\n"
NONE = 0xFFFF_FFFF
REQUIRED = 1

KIND_NAMES = {
    1: "DIRECTORY",
    2: "STRINGS",
    3: "METADATA",
    4: "PALETTE",
    5: "BASIS",
    6: "FISHER_Z",
    7: "ENTRY",
    8: "SLOT_L",
    9: "SCALE",
    10: "RAW",
}
K_DIRECTORY, K_STRINGS, K_METADATA = 1, 2, 3
K_PALETTE, K_BASIS, K_FISHER, K_ENTRY, K_SLOT_L, K_SCALE, K_RAW = 4, 5, 6, 7, 8, 9, 10

ELEMS = {1: ("f32", 4), 2: ("f16", 2), 3: ("bf16", 2)}
DTYPES = {
    1: ("BOOL", 1),
    2: ("U8", 1),
    3: ("I8", 1),
    4: ("I16", 2),
    5: ("U16", 2),
    6: ("I32", 4),
    7: ("F8_E4M3", 1),
    8: ("U32", 4),
    9: ("I64", 8),
    10: ("U64", 8),
    11: ("F16", 2),
    12: ("BF16", 2),
    13: ("F32", 4),
    14: ("F64", 8),
    15: ("F8_E5M2", 1),
}
FLOAT_DTYPES = {11, 12, 13, 14}
ROLES = [
    "OTHER",
    "TOKEN_EMBEDDING",
    "POSITION_EMBEDDING",
    "LM_HEAD",
    "ATTN_Q",
    "ATTN_K",
    "ATTN_V",
    "ATTN_QKV",
    "ATTN_O",
    "MLP_GATE",
    "MLP_UP",
    "MLP_DOWN",
    "NORM",
    "BIAS",
]
REGIMES = ["PASSTHROUGH", "INDEX", "ARGMAX"]
ENCODINGS = ["RAW", "PALETTE"]
HAS_SCALE, HAS_SLOT_L, HAS_QUALITY = 1, 2, 4


class Reject(Exception):
    """The file breaks the validation rule `rule` (an `R-...` id)."""

    def __init__(self, rule, what=""):
        super().__init__(f"{rule}: {what}")
        self.rule = rule


def align64(x):
    return (x + 63) // 64 * 64


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def f32_from_bits(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f32_read(b, o):
    return struct.unpack_from("<f", b, o)[0]


# --- f32 arithmetic emulation -------------------------------------------------
# A Python float is binary64. The sum or product of two binary32 values computed
# in binary64 and then rounded to binary32 is the correctly rounded binary32
# result (binary64 has more than 2 x 24 + 2 significand bits), so rounding after
# every single operation reproduces f32 arithmetic exactly.


def rf32(x):
    """Round a binary64 value to the nearest binary32 value."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def f32_bits(x):
    try:
        return struct.unpack("<I", struct.pack("<f", x))[0]
    except OverflowError:
        return 0xFF80_0000 if x < 0 else 0x7F80_0000


def elem_value(b, o, elem):
    """Element `elem` (spec section 4 table) at byte offset `o`, exactly as f32."""
    if elem == 1:
        return struct.unpack_from("<f", b, o)[0]
    if elem == 2:
        return struct.unpack_from("<e", b, o)[0]
    return f32_from_bits(u16(b, o) << 16)  # bf16: top half of a binary32


def decode_utf8(raw, rule):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject(rule, "bad UTF-8") from None


# --- open-time validation -----------------------------------------------------


def parse(data):
    """Validate `data` as spec section 7 says open does; return the parsed file."""
    n = len(data)
    if n < 64:
        raise Reject("R-TRUNCATED", f"{n} bytes")
    if data[0:8] != MAGIC:
        raise Reject("R-MAGIC")
    major, minor = u16(data, 8), u16(data, 10)
    if major != 1:
        raise Reject("R-MAJOR", f"major {major}")
    flags = u32(data, 12)
    file_len = u64(data, 16)
    table_offset = u64(data, 24)
    section_count = u32(data, 32)
    header_crc = u32(data, 60)

    # Spec section 7, "Order of checks", steps 1-3.
    if section_count > MAX_SECTIONS:
        raise Reject("R-LIMIT", "section_count")
    table_end = table_offset + 32 * section_count
    if table_offset < 64 or table_end > n:
        if file_len != n:
            raise Reject("R-FILE-LEN", "the table does not lie inside a file of the wrong length")
        raise Reject("R-TABLE-OFFSET", "the table does not lie inside the file after the header")
    crc = zlib.crc32(data[0:60])
    crc = zlib.crc32(data[table_offset:table_end], crc)
    if crc != header_crc:
        raise Reject("R-HEADER-CRC")
    if flags != 0 or any(data[36:60]):
        raise Reject("R-RESERVED", "header")
    if file_len != n or table_end != n:
        raise Reject("R-FILE-LEN", f"file_len {file_len}, real {n}, table end {table_end}")

    sections = []
    expect = 64
    for i in range(section_count):
        e = table_offset + 32 * i
        kind, sflags = u16(data, e), u16(data, e + 2)
        scrc, off, length = u32(data, e + 4), u64(data, e + 8), u64(data, e + 16)
        if kind == 0:
            raise Reject("R-SECTION-KIND", f"section {i}")
        if sflags & ~REQUIRED:
            raise Reject("R-SECTION-FLAGS", f"section {i} reserved flag bits")
        if kind in KIND_NAMES:
            if not sflags & REQUIRED:
                raise Reject("R-SECTION-FLAGS", f"section {i} not REQUIRED")
        elif sflags & REQUIRED:
            raise Reject("R-UNKNOWN-REQUIRED", f"section {i} kind {kind}")
        if any(data[e + 24 : e + 32]):
            raise Reject("R-RESERVED", f"section table entry {i}")
        if off != expect:
            raise Reject("R-SECTION-OFFSET", f"section {i} at {off}, expected {expect}")
        if off + length > table_offset:
            # Reported at once, before the next entry's other fields (spec 7, step 4).
            if i + 1 < section_count:
                raise Reject("R-SECTION-OFFSET", f"section {i} runs past the table into section {i + 1}")
            raise Reject("R-TABLE-OFFSET", f"the last section {i} runs into the table")
        sections.append({"index": i, "kind": kind, "flags": sflags, "crc32": scrc, "offset": off, "length": length})
        expect = align64(off + length)
    # A section running into the next one failed that one's offset check; the
    # last one running into the table fails the table offset check.
    if table_offset != expect:
        raise Reject("R-TABLE-OFFSET", f"table at {table_offset}, expected {expect}")
    # Padding is checked by verification, not here (spec section 7).

    def of_kind(k):
        return [s for s in sections if s["kind"] == k]

    if len(of_kind(K_DIRECTORY)) != 1 or len(of_kind(K_STRINGS)) != 1 or len(of_kind(K_METADATA)) > 1:
        raise Reject("R-SECTION-COUNT")

    f = {
        "data": data,
        "major": major,
        "minor": minor,
        "file_len": n,
        "table_offset": table_offset,
        "sections": sections,
    }
    parse_directory(f, of_kind(K_DIRECTORY)[0], of_kind(K_STRINGS)[0])
    meta = of_kind(K_METADATA)
    f["metadata"] = parse_metadata(data, meta[0]) if meta else []
    return f


def section_bytes(data, s):
    return data[s["offset"] : s["offset"] + s["length"]]


def parse_metadata(data, s):
    b = section_bytes(data, s)
    pos, out, prev = 0, [], None
    while pos < len(b):
        if pos + 4 > len(b):
            raise Reject("R-METADATA", "key length past the end")
        klen = u32(b, pos)
        pos += 4
        if klen < 1 or klen > MAX_NAME_LEN or pos + klen > len(b):
            raise Reject("R-METADATA", "key length")
        kraw = b[pos : pos + klen]
        pos += klen
        key = decode_utf8(kraw, "R-METADATA")
        if prev is not None and not kraw > prev:
            raise Reject("R-METADATA", "keys not strictly increasing")
        prev = kraw
        if pos + 4 > len(b):
            raise Reject("R-METADATA", "value length past the end")
        vlen = u32(b, pos)
        pos += 4
        if vlen > MAX_METADATA_BYTES or pos + vlen > len(b):
            raise Reject("R-METADATA", "value length")
        # The value's UTF-8 is checked when it is read (metadata_values).
        out.append((key, b[pos : pos + vlen]))
        pos += vlen
    return out


def check_padding(f):
    """Spec section 1: from each section end to the next 64-byte boundary the
    bytes are zero; checked by verification, not at open (section 7)."""
    data = f["data"]
    for s in f["sections"]:
        end = s["offset"] + s["length"]
        if any(data[end : align64(end)]):
            raise Reject("R-PADDING", f"after section {s['index']}")


def metadata_values(f):
    """Spec section 5: metadata values are UTF-8, checked when read and by
    verification, not at open."""
    return [(k, decode_utf8(v, "R-METADATA")) for k, v in f["metadata"]]


def parse_directory(f, dsec, ssec):
    data, sections = f["data"], f["sections"]
    d = section_bytes(data, dsec)
    strings = section_bytes(data, ssec)
    if len(d) < 32:
        raise Reject("R-DIR-SIZE", "shorter than its header")
    tensor_count, palette_count, basis_count, fisher_count = struct.unpack_from("<4I", d, 0)
    if any(d[16:32]):
        raise Reject("R-RESERVED", "directory header")
    if tensor_count > MAX_TENSORS or max(palette_count, basis_count, fisher_count) > MAX_PALETTES:
        raise Reject("R-LIMIT", "directory counts")
    want = 32 + 32 * (palette_count + basis_count + fisher_count) + 160 * tensor_count
    if len(d) != want or len(d) > MAX_DIRECTORY_BYTES:
        raise Reject("R-DIR-SIZE", f"{len(d)} bytes, expected {want}")

    used = {}  # section index -> directory field that references it

    def ref(idx, kind, what):
        if idx >= len(sections) or sections[idx]["kind"] != kind or idx in used:
            raise Reject("R-SECTION-REF", f"{what} -> section {idx}")
        used[idx] = what
        return sections[idx]

    pos = 32
    palettes = []
    for p in range(palette_count):
        sec, dd, k, bits, elem = struct.unpack_from("<IIHBB", d, pos)
        if any(d[pos + 12 : pos + 32]):
            raise Reject("R-RESERVED", f"palette {p}")
        pos += 32
        s = ref(sec, K_PALETTE, f"palette {p}")
        if bits not in (4, 8) or not 1 <= dd <= MAX_PALETTE_D or not 1 <= k <= (1 << bits):
            raise Reject("R-PALETTE-FIELDS", f"palette {p}")
        if elem not in ELEMS:
            raise Reject("R-ENUM", f"palette {p} elem {elem}")
        if s["length"] != (1 << bits) * dd * ELEMS[elem][1]:
            raise Reject("R-PALETTE-LEN", f"palette {p}")
        palettes.append({"section": s, "d": dd, "k": k, "bits": bits, "elem": elem})
    bases = []
    for i in range(basis_count):
        sec, n_cols, rows, elem = struct.unpack_from("<IIHB", d, pos)
        if any(d[pos + 11 : pos + 32]):
            raise Reject("R-RESERVED", f"basis {i}")
        pos += 32
        s = ref(sec, K_BASIS, f"basis {i}")
        if rows != SLOT_L_DIMS or n_cols == 0:
            raise Reject("R-BASIS-FIELDS", f"basis {i}")
        if elem not in ELEMS:
            raise Reject("R-ENUM", f"basis {i} elem {elem}")
        if s["length"] != rows * n_cols * ELEMS[elem][1]:
            raise Reject("R-BASIS-LEN", f"basis {i}")
        bases.append({"section": s, "n_cols": n_cols, "rows": rows, "elem": elem})
    fishers = []
    fisher_of = {}
    for i in range(fisher_count):
        sec, pal = struct.unpack_from("<II", d, pos)
        gamma = f32_read(d, pos + 8)
        if any(d[pos + 12 : pos + 32]):
            raise Reject("R-RESERVED", f"fisher {i}")
        pos += 32
        s = ref(sec, K_FISHER, f"fisher {i}")
        if pal >= palette_count:
            raise Reject("R-INDEX", f"fisher {i} palette {pal}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise Reject("R-FISHER-GAMMA", f"fisher {i}")
        k = palettes[pal]["k"]
        if s["length"] != k * k:
            raise Reject("R-FISHER-LEN", f"fisher {i}")
        if pal in fisher_of:
            raise Reject("R-FISHER-DUP", f"palette {pal}")
        fisher_of[pal] = i
        fishers.append({"section": s, "palette": pal, "gamma": gamma})

    tensors = []
    names = set()
    for t in range(tensor_count):
        r = d[pos : pos + 160]
        pos += 160
        tensors.append(parse_tensor(t, r, strings, names, palettes, bases, ref))

    # Every data section is referenced exactly once (duplicates caught in ref).
    for s in sections:
        if s["kind"] in (K_PALETTE, K_BASIS, K_FISHER, K_ENTRY, K_SLOT_L, K_SCALE, K_RAW) and s["index"] not in used:
            raise Reject("R-SECTION-REF", f"section {s['index']} unreferenced")

    f.update(palettes=palettes, bases=bases, fishers=fishers, fisher_of=fisher_of, tensors=tensors)


def parse_tensor(t, r, strings, names, palettes, bases, ref):
    name_off, name_len, dtype, ndims, role, regime, encoding, n_stages, flags, scale_elem = struct.unpack_from(
        "<IIBBBBBBBB", r, 0
    )
    shape = list(struct.unpack_from("<8Q", r, 16))
    data_sec, scale_sec, slot_sec, basis = struct.unpack_from("<4I", r, 80)
    stage_palette = list(struct.unpack_from("<4I", r, 96))
    slot_scale, rho_median, rho_p5, rho_min, rel_fro = struct.unpack_from("<5f", r, 112)
    if any(r[132:160]):
        raise Reject("R-RESERVED", f"tensor {t}")

    if not 1 <= name_len <= MAX_NAME_LEN or name_off + name_len > len(strings):
        raise Reject("R-NAME-BOUNDS", f"tensor {t}")
    raw_name = strings[name_off : name_off + name_len]
    name = decode_utf8(raw_name, "R-NAME-UTF8")
    if raw_name in names:
        raise Reject("R-NAME-DUP", name)
    names.add(raw_name)

    def sized(sec, kind, what, want, rule, size):
        """Section `sec` of `kind` holding this tensor's `what`: `want` bytes,
        else `rule` (`size` names the product that may overflow u64)."""
        s = ref(sec, kind, f"tensor {name} {what}")
        if want >= 1 << 64:
            raise Reject(rule, f"{name} {size} overflows u64")
        if s["length"] != want:
            raise Reject(rule, name)
        return s

    if dtype not in DTYPES or role >= len(ROLES) or regime >= len(REGIMES) or encoding >= len(ENCODINGS):
        raise Reject("R-ENUM", name)
    if scale_elem != 0 and scale_elem not in ELEMS:
        raise Reject("R-ENUM", f"{name} scale_elem")
    if ndims > MAX_DIMS or any(shape[ndims:]):
        raise Reject("R-SHAPE", name)
    if ndims == 0:
        n_rows, n_cols = 1, 1
    elif ndims == 1:
        n_rows, n_cols = 1, shape[0]
    else:
        n_rows, n_cols = shape[0], math.prod(shape[1:ndims])
    numel = n_rows * n_cols
    if n_cols >= 1 << 64 or numel >= 1 << 64:
        raise Reject("R-SHAPE", f"{name} overflows u64")

    qual = (rho_median, rho_p5, rho_min, rel_fro)
    out = {
        "index": t,
        "name": name,
        "dtype": dtype,
        "ndims": ndims,
        "shape": shape[:ndims],
        "role": role,
        "regime": regime,
        "encoding": encoding,
        "n_stages": n_stages,
        "flags": flags,
        "scale_elem": scale_elem,
        "n_rows": n_rows,
        "n_cols": n_cols,
        "numel": numel,
        "slot_scale": slot_scale,
        "quality": qual,
    }
    if encoding == 0:
        if (
            n_stages != 0
            or flags != 0
            or scale_elem != 0
            or scale_sec != NONE
            or slot_sec != NONE
            or basis != NONE
            or any(p != NONE for p in stage_palette)
            or struct.unpack_from("<5I", r, 112) != (0, 0, 0, 0, 0)
        ):
            raise Reject("R-TENSOR-FIELDS", name)
        out["data"] = sized(data_sec, K_RAW, "data", numel * DTYPES[dtype][1], "R-RAW-LEN", "byte size")
        return out

    if dtype not in FLOAT_DTYPES or regime == 0 or not 1 <= n_stages <= MAX_STAGES or flags & ~7:
        raise Reject("R-TENSOR-FIELDS", name)
    if any(p != NONE for p in stage_palette[n_stages:]):
        raise Reject("R-TENSOR-FIELDS", f"{name} unused stage_palette")
    stages = []
    stride = 0
    for s_i in range(n_stages):
        p = stage_palette[s_i]
        if p >= len(palettes):
            raise Reject("R-INDEX", f"{name} stage {s_i}")
        pal = palettes[p]
        if not 1 <= pal["d"] <= n_cols:
            raise Reject("R-PALETTE-FIT", f"{name} stage {s_i}")
        n_sub = -(-n_cols // pal["d"])
        cb = -(-(n_sub * pal["bits"]) // 8)
        stages.append({"palette": p, "n_sub": n_sub, "cb": cb, "start": stride})
        stride += cb
    s = sized(data_sec, K_ENTRY, "data", n_rows * stride, "R-ENTRY-LEN", "n_rows x stride")
    out.update(stages=stages, stride=stride, data=s)

    if flags & HAS_SCALE:
        if scale_elem not in ELEMS:
            raise Reject("R-ENUM", f"{name} scale_elem")
        out["scale"] = sized(scale_sec, K_SCALE, "scale", n_rows * ELEMS[scale_elem][1], "R-SCALE-LEN", "scale size")
    elif scale_elem != 0 or scale_sec != NONE:
        raise Reject("R-TENSOR-FIELDS", f"{name} scale without HAS_SCALE")

    if flags & HAS_SLOT_L:
        if basis >= len(bases):
            raise Reject("R-INDEX", f"{name} basis")
        if bases[basis]["n_cols"] != n_cols:
            raise Reject("R-BASIS-FIT", name)
        sl = sized(slot_sec, K_SLOT_L, "slot_l", n_rows * SLOT_L_DIMS, "R-SLOT-L-LEN", "SlotL size")
        if not math.isfinite(slot_scale):
            raise Reject("R-TENSOR-FIELDS", f"{name} slot_scale")
        out["slot_l"] = sl
        out["basis"] = basis
    elif slot_sec != NONE or basis != NONE or struct.unpack_from("<I", r, 112)[0] != 0:
        raise Reject("R-TENSOR-FIELDS", f"{name} SlotL fields without HAS_SLOT_L")

    if flags & HAS_QUALITY:
        if not all(math.isfinite(q) for q in qual) or not all(-1 <= q <= 1 for q in qual[:3]) or rel_fro < 0:
            raise Reject("R-QUALITY", name)
    elif struct.unpack_from("<4I", r, 116) != (0, 0, 0, 0):
        raise Reject("R-QUALITY", f"{name} quality values without HAS_QUALITY")
    return out


def verify(f):
    """Spec section 7: verification checks every section CRC (then the
    padding and the metadata values: check_padding, metadata_values)."""
    data = f["data"]
    return [zlib.crc32(section_bytes(data, s)) == s["crc32"] for s in f["sections"]]


# --- row decoding (spec section 4, "Decoding a PALETTE row") ------------------


def code_at(entry, row_base, stage, j, bits):
    base = row_base + stage["start"]
    if bits == 8:
        return entry[base + j]
    byte = entry[base + j // 2]
    return byte & 0x0F if j % 2 == 0 else byte >> 4


def decode_palette_tensor(f, t):
    """All rows of PALETTE tensor `t`, each a list of f32 bit patterns."""
    data = f["data"]
    entry = section_bytes(data, t["data"])
    n_rows, n_cols = t["n_rows"], t["n_cols"]
    # Each stored value is converted exactly to f32 once, up front.
    pals = []
    for st in t["stages"]:
        p = f["palettes"][st["palette"]]
        size = ELEMS[p["elem"]][1]
        raw = section_bytes(data, p["section"])
        vals = [elem_value(raw, i * size, p["elem"]) for i in range((1 << p["bits"]) * p["d"])]
        pals.append((st, p["d"], p["bits"], vals))
    scales = None
    if t["flags"] & HAS_SCALE:
        size = ELEMS[t["scale_elem"]][1]
        raw = section_bytes(data, t["scale"])
        scales = [elem_value(raw, r * size, t["scale_elem"]) for r in range(n_rows)]
    slot = basis = None
    if t["flags"] & HAS_SLOT_L:
        slot = struct.unpack(f"<{n_rows * 8}b", section_bytes(data, t["slot_l"]))
        b = f["bases"][t["basis"]]
        size = ELEMS[b["elem"]][1]
        raw = section_bytes(data, b["section"])
        basis = [elem_value(raw, i * size, b["elem"]) for i in range(8 * n_cols)]
    slot_scale = t["slot_scale"]
    rows = []
    for r in range(n_rows):
        row_base = r * t["stride"]
        out = []
        for c in range(n_cols):
            acc = 0.0
            for st, d, bits, vals in pals:
                code = code_at(entry, row_base, st, c // d, bits)
                acc = rf32(acc + vals[code * d + c % d])
            if scales is not None:
                acc = rf32(acc * scales[r])
            if slot is not None:
                tt = 0.0
                for i in range(8):
                    tt = rf32(tt + rf32(float(slot[r * 8 + i]) * basis[i * n_cols + c]))
                acc = rf32(acc + rf32(slot_scale * tt))
            out.append(f32_bits(acc))
        rows.append(out)
    return rows


def decode_raw_tensor(f, t):
    """Rows of a float RAW tensor converted to f32 bit patterns (F64 rounds)."""
    raw = section_bytes(f["data"], t["data"])
    dt = t["dtype"]
    size = DTYPES[dt][1]
    vals = []
    for i in range(t["numel"]):
        o = i * size
        if dt == 13:
            vals.append(u32(raw, o))
        elif dt == 12:
            vals.append(u16(raw, o) << 16)
        elif dt == 11:
            vals.append(f32_bits(struct.unpack_from("<e", raw, o)[0]))
        else:
            vals.append(f32_bits(struct.unpack_from("<d", raw, o)[0]))
    n_cols = t["n_cols"]
    return [vals[r * n_cols : (r + 1) * n_cols] for r in range(t["n_rows"])]


# --- writer-side checks of valid files ---------------------------------------


def check_writer_rules(f, problems, where):
    """Normative writer rules of section 4 that open does not check."""
    data = f["data"]
    for i, p in enumerate(f["palettes"]):
        raw = section_bytes(data, p["section"])
        size = ELEMS[p["elem"]][1]
        vals = [elem_value(raw, j * size, p["elem"]) for j in range((1 << p["bits"]) * p["d"])]
        if any(v != 0 for v in vals[p["k"] * p["d"] :]):
            problems.append(f"{where}: palette {i}: padding entries are not zero")
        if not all(math.isfinite(v) for v in vals):
            problems.append(f"{where}: palette {i}: a value is not finite")
    for i, fz in enumerate(f["fishers"]):
        p = f["palettes"][fz["palette"]]
        k, d = p["k"], p["d"]
        raw = section_bytes(data, p["section"])
        size = ELEMS[p["elem"]][1]
        entries = [[elem_value(raw, (e * d + j) * size, p["elem"]) for j in range(d)] for e in range(k)]
        table = struct.unpack(f"<{k * k}b", section_bytes(data, fz["section"]))
        gamma, want = fisher_table(entries)
        for a in range(k):
            for b in range(k):
                if table[a * k + b] != table[b * k + a]:
                    problems.append(f"{where}: fisher {i}: not symmetric at ({a}, {b})")
        if table != tuple(want):
            problems.append(f"{where}: fisher {i}: table {list(table)} != spec's {want}")
        if not close(fz["gamma"], gamma):
            problems.append(f"{where}: fisher {i}: gamma {fz['gamma']} != spec's {gamma}")


def fisher_table(entries):
    """FisherZ table per the writer rule of section 4, in binary64."""
    k = len(entries)

    def pearson(x, y):
        n = len(x)
        mx, my = sum(x) / n, sum(y) / n
        vx = sum((a - mx) ** 2 for a in x)
        vy = sum((b - my) ** 2 for b in y)
        if vx == 0 or vy == 0:
            return 0.0
        return sum((a - mx) * (b - my) for a, b in zip(x, y)) / math.sqrt(vx * vy)

    z = [[math.atanh(max(-0.999, min(0.999, pearson(entries[i], entries[j])))) for j in range(k)] for i in range(k)]
    m = max(abs(v) for row in z for v in row)
    gamma = m / 127 if m > 0 else 1 / 127

    def round_half_away(x):
        return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)

    return gamma, [round_half_away(z[i][j] / gamma) for i in range(k) for j in range(k)]


# --- the inspect report -------------------------------------------------------
# The JSON layout (field names, lower-case enum names) is the CLI's; every
# value is computed from the spec: sections 2-5 for the records and the size
# report of section 8 for the byte counts.


def ratio(bf16, nbytes):
    return bf16 / nbytes if nbytes > 0 and bf16 > 0 else None


def worst(qs):
    """Section 8: the worst recorded quality, each figure on its own."""
    if not qs:
        return None
    return {
        "rho_median": min(q[0] for q in qs),
        "rho_p5": min(q[1] for q in qs),
        "rho_min": min(q[2] for q in qs),
        "rel_fro": max(q[3] for q in qs),
    }


def size_report(f):
    """Spec section 8."""
    secs, tensors = f["sections"], f["tensors"]
    padding = sum(align64(s["offset"] + s["length"]) - s["offset"] - s["length"] for s in secs)
    by_kind = {}
    unused = 0
    for s in secs:
        if s["kind"] in KIND_NAMES:
            n, b = by_kind.get(s["kind"], (0, 0))
            by_kind[s["kind"]] = (n + 1, b + s["length"])
        else:
            unused += s["length"]
    # Shared objects in order: palettes, their FisherZ tables, bases.
    shared = []
    for i, p in enumerate(f["palettes"]):
        users = [t["index"] for t in tensors if any(st["palette"] == i for st in t.get("stages", []))]
        shared.append((p["section"]["length"], users))
    for i, p in enumerate(f["palettes"]):
        fi = f["fisher_of"].get(i)
        length = f["fishers"][fi]["section"]["length"] if fi is not None else 0
        shared.append((length, shared[i][1]))
    for i, b in enumerate(f["bases"]):
        users = [t["index"] for t in tensors if t.get("basis") == i]
        shared.append((b["section"]["length"], users))
    share = [0] * len(tensors)
    for nbytes, users in shared:
        if not users:
            unused += nbytes
            continue
        q, r = divmod(nbytes, len(users))
        for pos, t in enumerate(users):
            share[t] += q + (1 if pos < r else 0)
    own = []
    for t in tensors:
        o = t["data"]["length"]
        for key in ("scale", "slot_l"):
            if key in t:
                o += t[key]["length"]
        own.append(o)
    tbytes = [own[i] + share[i] for i in range(len(tensors))]
    return padding, by_kind, unused, tbytes


def inspect_json(f, crc_ok):
    tensors = f["tensors"]
    padding, by_kind, unused, tbytes = size_report(f)
    users = [sum(1 for t in tensors if any(st["palette"] == i for st in t.get("stages", []))) for i in range(len(f["palettes"]))]
    out = {
        "version": f"{f['major']}.{f['minor']}",
        "file_len": f["file_len"],
        "sections": [
            {
                "index": s["index"],
                "kind": KIND_NAMES[s["kind"]].lower() if s["kind"] in KIND_NAMES else f"unknown({s['kind']})",
                "required": bool(s["flags"] & REQUIRED),
                "offset": s["offset"],
                "length": s["length"],
                "crc32": f"{s['crc32']:08x}",
                "crc_ok": ok,
            }
            for s, ok in zip(f["sections"], crc_ok)
        ],
        "palettes": [
            {
                "index": i,
                "k": p["k"],
                "d": p["d"],
                "bits": p["bits"],
                "elem": ELEMS[p["elem"]][0],
                "bytes": p["section"]["length"],
                "fisher_z": i in f["fisher_of"],
                "shared_by": users[i],
            }
            for i, p in enumerate(f["palettes"])
        ],
        "bases": [
            {"index": i, "n_cols": b["n_cols"], "rows": b["rows"], "elem": ELEMS[b["elem"]][0], "bytes": b["section"]["length"]}
            for i, b in enumerate(f["bases"])
        ],
        "fisher_z": [{"palette": z["palette"], "k": f["palettes"][z["palette"]]["k"], "gamma": z["gamma"]} for z in f["fishers"]],
        "tensors": [],
        "metadata": {k: v for k, v in metadata_values(f) if not k.startswith("file.")},
        "metadata_bytes": [{"key": k, "bytes": len(v)} for k, v in f["metadata"]],
    }
    for t, nbytes in zip(tensors, tbytes):
        q = t["quality"]
        out["tensors"].append(
            {
                "name": t["name"],
                "shape": t["shape"],
                "dtype": DTYPES[t["dtype"]][0],
                "role": ROLES[t["role"]].lower(),
                "regime": REGIMES[t["regime"]].lower(),
                "encoding": ENCODINGS[t["encoding"]].lower(),
                "stages": [
                    {"palette": st["palette"], "d": f["palettes"][st["palette"]]["d"], "bits": f["palettes"][st["palette"]]["bits"]}
                    for st in t.get("stages", [])
                ],
                "scale": ELEMS[t["scale_elem"]][0] if "scale" in t else None,
                "slot_l": t.get("basis"),
                "bytes": nbytes,
                "bf16_bytes": 2 * t["numel"],
                "ratio": ratio(2 * t["numel"], nbytes),
                "quality": (
                    {"rho_median": q[0], "rho_p5": q[1], "rho_min": q[2], "rel_fro": q[3]}
                    if t["flags"] & HAS_QUALITY
                    else None
                ),
            }
        )
    enc = [(2 * t["numel"], b) for t, b in zip(tensors, tbytes) if t["encoding"] == 1]
    enc_bf16, enc_bytes = sum(a for a, _ in enc), sum(b for _, b in enc)
    bf16 = sum(2 * t["numel"] for t in tensors)
    by_regime = []
    for g in range(len(REGIMES)):
        members = [(t, b) for t, b in zip(tensors, tbytes) if t["regime"] == g]
        if members:
            params = sum(t["numel"] for t, _ in members)
            nbytes = sum(b for _, b in members)
            by_regime.append(
                {
                    "regime": REGIMES[g].lower(),
                    "tensors": len(members),
                    "encoded": sum(1 for t, _ in members if t["encoding"] == 1),
                    "params": params,
                    "bytes": nbytes,
                    "ratio": ratio(2 * params, nbytes),
                    "worst": worst([t["quality"] for t, _ in members if t["flags"] & HAS_QUALITY]),
                }
            )
    out["totals"] = {
        "tensors": len(tensors),
        "encoded_tensors": len(enc),
        "params": sum(t["numel"] for t in tensors),
        "file_bytes": f["file_len"],
        "bf16_bytes": bf16,
        "ratio": ratio(bf16, f["file_len"]),
        "encoded_bytes": enc_bytes,
        "encoded_bf16_bytes": enc_bf16,
        "encoded_ratio": ratio(enc_bf16, enc_bytes),
        "header_bytes": 64,
        "table_bytes": 32 * len(f["sections"]),
        "padding_bytes": padding,
        "unused_shared_bytes": unused,
        "by_kind": [{"kind": KIND_NAMES[k].lower(), "sections": n, "bytes": b} for k, (n, b) in sorted(by_kind.items())],
        "by_regime": by_regime,
    }
    return out


def close(a, b):
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-6 * max(abs(a), abs(b)))


def compare(mine, theirs, path, problems):
    """Exact for integers, strings, booleans and nulls; floats to 1e-6 relative."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for k in sorted(set(mine) | set(theirs)):
            if k not in mine:
                problems.append(f"{path}.{k}: in the committed JSON only")
            elif k not in theirs:
                problems.append(f"{path}.{k}: missing from the committed JSON")
            else:
                compare(mine[k], theirs[k], f"{path}.{k}", problems)
    elif isinstance(mine, list) and isinstance(theirs, list):
        if len(mine) != len(theirs):
            problems.append(f"{path}: {len(mine)} items, committed {len(theirs)}")
        for i, (a, b) in enumerate(zip(mine, theirs)):
            compare(a, b, f"{path}[{i}]", problems)
    elif isinstance(mine, bool) or isinstance(theirs, bool) or mine is None or theirs is None:
        if mine is not theirs and mine != theirs:
            problems.append(f"{path}: {mine!r}, committed {theirs!r}")
        elif type(mine) is not type(theirs):
            problems.append(f"{path}: {mine!r}, committed {theirs!r}")
    elif isinstance(mine, float) or isinstance(theirs, float):
        if not (isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and close(float(mine), float(theirs))):
            problems.append(f"{path}: {mine!r}, committed {theirs!r}")
    elif mine != theirs or type(mine) is not type(theirs):
        problems.append(f"{path}: {mine!r}, committed {theirs!r}")


# --- driver -------------------------------------------------------------------


def open_accepted(path, kind, problems):
    """Parses a vector that must be accepted, verifies its CRCs and the
    writer rules; (where, bytes, parsed, per-section CRC results), or None
    when it is rejected."""
    where = f"{kind}/{path.name}"
    data = path.read_bytes()
    try:
        f = parse(data)
    except Reject as e:
        problems.append(f"{where}: rejected: {e}")
        return None
    crc_ok = verify(f)
    if not all(crc_ok):
        problems.append(f"{where}: section CRC mismatch in sections {[i for i, ok in enumerate(crc_ok) if not ok]}")
    try:
        check_padding(f)
    except Reject as e:
        problems.append(f"{where}: verification rejected it: {e}")
    check_writer_rules(f, problems, where)
    return where, data, f, crc_ok


def check_valid(path, problems):
    opened = open_accepted(path, "valid", problems)
    if opened is None:
        return
    where, data, f, crc_ok = opened
    for name, size in over_limit(f, len(data)):
        problems.append(f"{where}: {name} decodes to {size} bytes, over the expansion limit")

    committed = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    compare(inspect_json(f, crc_ok), committed, where, problems)

    rows = json.loads(path.with_suffix(".rows.json").read_text(encoding="utf-8"))["tensors"]
    float_tensors = [t for t in f["tensors"] if t["encoding"] == 1 or t["dtype"] in FLOAT_DTYPES]
    if [t["name"] for t in float_tensors] != [r["name"] for r in rows]:
        problems.append(f"{where}: rows.json lists {[r['name'] for r in rows]}, float tensors are {[t['name'] for t in float_tensors]}")
        return
    for t, r in zip(float_tensors, rows):
        mine = decode_palette_tensor(f, t) if t["encoding"] == 1 else decode_raw_tensor(f, t)
        theirs = [[int(h, 16) for h in row] for row in r["rows"]]
        if (r["n_rows"], r["n_cols"]) != (t["n_rows"], t["n_cols"]):
            problems.append(f"{where}: {t['name']}: rows.json shape {r['n_rows']}x{r['n_cols']}")
        if mine != theirs:
            bad = next((i, j) for i, (a, b) in enumerate(zip(mine, theirs)) for j in range(max(len(a), len(b))) if a[j : j + 1] != b[j : j + 1]) if len(mine) == len(theirs) else None
            problems.append(f"{where}: {t['name']}: decoded rows differ (first at row/col {bad})")


def over_limit(f, file_len):
    """(name, f32 bytes) of every tensor over the default expansion limit."""
    return [(t["name"], t["numel"] * 4) for t in f["tensors"] if t["numel"] * 4 > DEFAULT_MAX_EXPANSION * file_len]


def check_guarded(path, problems):
    opened = open_accepted(path, "guarded", problems)
    if opened is None:
        return
    where, data, f, _ = opened
    want = {"refused": []}
    for line in path.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
        key, *rest = line.split()
        if key == "refused":
            want["refused"].append((rest[0], int(rest[1])))
        else:
            want[key] = int(rest[0])
    if want.get("file_len") != len(data):
        problems.append(f"{where}: file_len {len(data)}, .expected says {want.get('file_len')}")
    if want.get("max_expansion") != DEFAULT_MAX_EXPANSION:
        problems.append(f"{where}: .expected limit {want.get('max_expansion')}, spec says {DEFAULT_MAX_EXPANSION}")
    mine = over_limit(f, len(data))
    if mine != want["refused"]:
        problems.append(f"{where}: over the limit: {mine}, .expected says {want['refused']}")
    if not mine:
        problems.append(f"{where}: no tensor over the limit")


def check_invalid(path, problems):
    where = f"invalid/{path.name}"
    lines = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    if len(lines) < 2:
        problems.append(f"{where}: .expected needs the kind and the rule")
        return
    want = lines[1].strip()
    # A third line `verify`: open accepts the file and verification (which
    # reads the data) rejects it.
    when = lines[2].strip() if len(lines) > 2 else "open"
    try:
        f = parse(path.read_bytes())
    except Reject as e:
        if when != "open":
            problems.append(f"{where}: rejected at open for {e.rule} ({e}), expected {want} at {when}")
        elif e.rule != want:
            problems.append(f"{where}: rejected for {e.rule} ({e}), expected {want}")
        return
    if when == "verify":
        if not all(verify(f)):
            problems.append(f"{where}: a section CRC fails; expected {want} from the data")
            return
        try:
            check_padding(f)
            metadata_values(f)
        except Reject as e:
            if e.rule != want:
                problems.append(f"{where}: verification rejected for {e.rule} ({e}), expected {want}")
            return
        problems.append(f"{where}: verified, expected {want}")
        return
    problems.append(f"{where}: accepted, expected {want} (CRCs ok: {all(verify(f))})")


def main():
    root = Path(__file__).resolve().parent / "vectors"
    problems = []
    valid = sorted((root / "valid").glob("*.hhtld"))
    invalid = sorted((root / "invalid").glob("*.hhtld"))
    guarded = sorted((root / "guarded").glob("*.hhtld"))
    for p in guarded:
        check_guarded(p, problems)
    for p in valid:
        check_valid(p, problems)
    for p in invalid:
        check_invalid(p, problems)
    for line in problems:
        print(line)
    print(f"check_vectors: {len(valid)} valid, {len(invalid)} invalid, {len(guarded)} guarded, {len(problems)} disagreements")
    if not valid or not invalid or not guarded:
        print("check_vectors: no vectors found")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
