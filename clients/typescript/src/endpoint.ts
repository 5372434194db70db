/** Endpoints of `@Move@` notices. */

/** Turns an endpoint `host:port` into a URL with `url`'s scheme and path. */
export function urlFor(url: string, endpoint: string): string {
  const next = new URL(url);
  next.host = endpoint;
  return next.toString();
}

/** A `@Move@` payload's endpoint, or undefined unless it is `host:port`. */
export function moveEndpoint(payload: Uint8Array): string | undefined {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return undefined;
  }
  const colon = text.lastIndexOf(":");
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !/^\d+$/.test(text.slice(colon + 1)) || port > 65535) return undefined;
  return text;
}
