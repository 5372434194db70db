/**
 * An LZ4 *block* decoder (the raw block format, no frame header), as the server compresses
 * large payloads for clients granted the `LZ4` capability. Every read and copy is bounds
 * checked: a malformed block throws {@link ProtocolError}, it never reads or writes out of range.
 */
import { ProtocolError } from "./errors.js";

/** Decompresses `src`, which must decode to exactly `originalSize` bytes. */
export function lz4DecodeBlock(src: Uint8Array, originalSize: number): Uint8Array {
  if (!Number.isInteger(originalSize) || originalSize < 0) {
    throw new ProtocolError(`lz4: bad original size ${originalSize}`);
  }
  const out = new Uint8Array(originalSize);
  let s = 0;
  let d = 0;
  const end = src.length;
  const readLength = (base: number): number => {
    let length = base;
    if (base === 15) {
      let b: number;
      do {
        if (s >= end) throw new ProtocolError("lz4: length runs past the block");
        b = src[s++];
        length += b;
      } while (b === 255);
    }
    return length;
  };
  while (s < end) {
    const token = src[s++];
    const literals = readLength(token >>> 4);
    if (literals > end - s) throw new ProtocolError("lz4: literals run past the block");
    if (literals > originalSize - d) throw new ProtocolError("lz4: literals overflow the output");
    out.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s === end) break; // the last sequence has literals only
    if (end - s < 2) throw new ProtocolError("lz4: truncated match offset");
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d) throw new ProtocolError(`lz4: bad match offset ${offset}`);
    const matchLength = readLength(token & 15) + 4;
    if (matchLength > originalSize - d) throw new ProtocolError("lz4: match overflows the output");
    let from = d - offset;
    if (offset >= matchLength) {
      out.copyWithin(d, from, from + matchLength);
      d += matchLength;
    } else {
      // Overlapping copy: byte by byte repeats the last `offset` bytes.
      for (let i = 0; i < matchLength; i++) out[d++] = out[from++];
    }
  }
  if (d !== originalSize) {
    throw new ProtocolError(`lz4: block decodes to ${d} bytes, not ${originalSize}`);
  }
  return out;
}
