/** Assertions and waits that run in Node and in a browser alike (no node:assert). */

export class CheckFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckFailed";
  }
}

const show = (value: unknown): string =>
  JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `bytes(${v.length})` : v));

export function ok(condition: unknown, what: string): asserts condition {
  if (!condition) throw new CheckFailed(what);
}

export function equal<T>(actual: T, expected: T, what: string): void {
  if (show(actual) !== show(expected)) {
    throw new CheckFailed(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Resolves when `predicate` holds (checked every 10 ms); fails after `ms`. */
export async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new CheckFailed(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Expects `promise` to reject with a PlayHouseError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: number, what: string): Promise<{ code: number }> {
  try {
    await promise;
  } catch (error) {
    const got = (error as { code?: number }).code;
    equal(got, code, `${what}: error code`);
    return error as { code: number };
  }
  throw new CheckFailed(`${what}: expected a rejection with code ${code}, it resolved`);
}

/** Resolves with the first event, failing after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new CheckFailed(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
