"""msgpack for the integration tests, standard library only: what commands,
replies and events hold (nil, bools, ints, floats, str, bin, arrays, maps).
mp_pack always uses the widest str/bin/array/map headers, which every
decoder reads; mp_unpack reads every form of these types."""

import struct


def mp_pack(obj):
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 0x80:
            return bytes([obj])
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, float):
        return b"\xcb" + struct.pack(">d", obj)
    if isinstance(obj, bytes):
        return b"\xc6" + struct.pack(">I", len(obj)) + obj
    if isinstance(obj, str):
        b = obj.encode("utf-8")
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(obj, (list, tuple)):
        return b"\xdd" + struct.pack(">I", len(obj)) + b"".join(mp_pack(x) for x in obj)
    if isinstance(obj, dict):
        return (b"\xdf" + struct.pack(">I", len(obj)) +
                b"".join(mp_pack(k) + mp_pack(v) for k, v in obj.items()))
    raise TypeError(type(obj))


def mp_unpack(data):
    def take(i, n):
        return data[i:i + n], i + n

    def one(i):
        b = data[i]
        i += 1
        if b <= 0x7F:
            return b, i
        if b >= 0xE0:
            return b - 0x100, i
        if 0x80 <= b <= 0x8F:
            return mapping(i, b & 0x0F)
        if 0x90 <= b <= 0x9F:
            return array(i, b & 0x0F)
        if 0xA0 <= b <= 0xBF:
            s, i = take(i, b & 0x1F)
            return s.decode("utf-8"), i
        fixed = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in fixed:
            return fixed[b], i
        if b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):
            w = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
            n = int.from_bytes(data[i:i + w], "big")
            s, i = take(i + w, n)
            return (s if b <= 0xC6 else s.decode("utf-8")), i
        ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
                0xCA: ">f", 0xCB: ">d"}
        if b in ints:
            fmt = ints[b]
            n = struct.calcsize(fmt)
            return struct.unpack(fmt, data[i:i + n])[0], i + n
        if b in (0xDC, 0xDD, 0xDE, 0xDF):
            w = 2 if b in (0xDC, 0xDE) else 4
            n = int.from_bytes(data[i:i + w], "big")
            return (array if b <= 0xDD else mapping)(i + w, n)
        raise ValueError(f"msgpack byte {b:#x} not handled")

    def array(i, n):
        out = []
        for _ in range(n):
            v, i = one(i)
            out.append(v)
        return out, i

    def mapping(i, n):
        out = {}
        for _ in range(n):
            k, i = one(i)
            v, i = one(i)
            out[k] = v
        return out, i

    value, end = one(0)
    assert end == len(data), "trailing bytes"
    return value
