/** The checks that need no server (test/units.ts), in Node. */
import { test } from "node:test";
import { units } from "../units.js";

for (const unit of units) {
  test(unit.name, () => unit.run({} as never));
}
