/** A small typed event emitter (no dependency, works in browsers and Node). */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (arg: any) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<Listener>>();

  /** Calls `listener` on every `event`; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }

  /** Resolves with the next `event`. */
  once<K extends keyof Events>(event: K): Promise<Events[K]> {
    return new Promise((resolve) => {
      const off = this.on(event, (arg) => {
        off();
        resolve(arg);
      });
    });
  }

  protected emit<K extends keyof Events>(event: K, arg: Events[K]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        listener(arg);
      } catch (error) {
        console.error(`PlayHouse client: a ${String(event)} listener threw`, error);
      }
    }
  }
}
