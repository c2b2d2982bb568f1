// What a build host really has, read back on refresh (a dynamic provider over lib/ssh and
// lib/build-host). The command plugin has no read, so a host that lost its entries or its
// emulator folder (a reinstall, a reboot without persistence) would otherwise look healthy to
// Pulumi. A refresh that finds drift counts a repair (and, when files are gone, a re-upload);
// BinfmtHost feeds the counts to the upload's triggers and the register command's update, so
// the next `up` repairs the host, while an intact host changes nothing. The SSH key is read at
// run time from the stack's secret config, like the GitHub token: never an input, never in state.
import * as pulumi from '@pulumi/pulumi';
import type * as BuildHost from '../lib/build-host.ts';
import type * as Ssh from '../lib/ssh.ts';
import { keyedDiff, loadProjectModule } from './provider-runtime.ts';

/** The stack config key the check reads the SSH key from, at run time. */
const KEY_CONFIG = 'polyarch:sshPrivateKey';

export interface BinfmtCheckInputs {
  /** The build host's name in stack config, for messages. */
  host: string;
  address: string;
  port: number;
  user: string;
  /** Whether that user reads the host through passwordless sudo, as it registers. */
  sudo: boolean;
  /** `<type> <base64>`; without it the host key is not checked. */
  hostKey?: string;
  /** What a healthy registration looks like there. */
  expected: BuildHost.ExpectedHost;
}

export interface BinfmtCheckOutputs extends BinfmtCheckInputs {
  /** Refreshes that found the host drifted; each one makes the next `up` re-register. */
  repairs: number;
  /** Refreshes that found registered files missing or changed; each one uploads them again. */
  reuploads: number;
  /** What the last refresh that found drift saw ("" until one does). */
  drift: string;
}

export type BinfmtCheckArgs = { [K in keyof BinfmtCheckInputs]: pulumi.Input<BinfmtCheckInputs[K]> };

interface Provider extends pulumi.dynamic.ResourceProvider<BinfmtCheckInputs, BinfmtCheckOutputs> {
  /** Set by configure; lives only in the provider host's memory. */
  privateKey?: string;
}

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: Provider = {
  async configure(req) {
    this.privateKey = req.config.get(KEY_CONFIG);
  },
  diff: keyedDiff([], ['host', 'address', 'port', 'user', 'sudo', 'hostKey', 'expected']),
  async create(inputs) {
    const { randomUUID } = process.getBuiltinModule('node:crypto');
    return { id: randomUUID(), outs: { ...inputs, repairs: 0, reuploads: 0, drift: '' } };
  },
  async update(_id, olds, news) {
    return { outs: { ...news, repairs: olds.repairs, reuploads: olds.reuploads, drift: olds.drift } };
  },
  async read(id, props) {
    if (!props) return { id, props };
    if (!this.privateKey) throw new Error(`build host "${props.host}": cannot read it back without the secret ${KEY_CONFIG}`);
    const bh = await loadProjectModule<typeof BuildHost>('lib/build-host.ts');
    const ssh = await loadProjectModule<typeof Ssh>('lib/ssh.ts');
    const target = { name: props.host, address: props.address, port: props.port, user: props.user, ...(props.hostKey && { hostKey: props.hostKey }) };
    const found = bh.compareObservation(props.expected, await ssh.sshRun(target, this.privateKey, bh.observeCommand(props.expected, props.sudo)));
    if (found.problems.length === 0) return { id, props };
    return {
      id,
      props: { ...props, repairs: props.repairs + 1, reuploads: props.reuploads + (found.files ? 1 : 0), drift: found.problems.join('; ') },
    };
  },
};

/** Reads a build host's entries, emulators and binfmt.d files back on refresh; counts the repairs they need. */
export class BinfmtCheck extends pulumi.dynamic.Resource {
  declare public readonly repairs: pulumi.Output<number>;
  declare public readonly reuploads: pulumi.Output<number>;
  declare public readonly drift: pulumi.Output<string>;

  constructor(name: string, args: BinfmtCheckArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, repairs: undefined, reuploads: undefined, drift: undefined }, opts, 'polyarch', 'BinfmtCheck');
  }
}
