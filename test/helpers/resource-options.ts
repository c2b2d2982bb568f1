// Resource options the mock monitor does not pass on to the mocks, recorded from each
// registration as the program sent it: `retainOnDelete` and `deletedWith`, which decide whether
// the engine may ever delete a published release or its files. Import alongside helpers/program.ts.
import { MockMonitor } from '@pulumi/pulumi/runtime/mocks.js';

type OptionsReq = { getType(): string; getName(): string; getRetainondelete(): boolean; getDeletedwith(): string };
const retain = new Map<string, boolean>();
const deletedWithUrn = new Map<string, string>();

const proto = MockMonitor.prototype as unknown as { registerResource(req: OptionsReq, cb: unknown): Promise<void> };
const original = proto.registerResource;
proto.registerResource = function (this: unknown, req: OptionsReq, cb: unknown) {
  retain.set(`${req.getType()}::${req.getName()}`, req.getRetainondelete());
  deletedWithUrn.set(`${req.getType()}::${req.getName()}`, req.getDeletedwith());
  return original.call(this, req, cb);
};

/** Whether the last program loaded declared this resource with `retainOnDelete: true`. */
export const retainedOnDelete = (r: { type: string; name: string }): boolean => retain.get(`${r.type}::${r.name}`) === true;

/** The URN of the resource the last program loaded declared this one `deletedWith` ('' for none). */
export const deletedWith = (r: { type: string; name: string }): string => deletedWithUrn.get(`${r.type}::${r.name}`) ?? '';
