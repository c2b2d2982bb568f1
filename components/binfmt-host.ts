// One build host over SSH: upload the emulators for its arch and the register script as one
// folder (remote.CopyToRemote: one connection per host), then one remote.Command whose create
// registers the binfmt_misc entries, whose update re-registers what changed and whose delete
// unregisters them; a BinfmtCheck reads the host back on refresh so drift gets repaired.
// lib/build-host.ts plans the files and the shell strings, and says why a replacement
// can never leave the host unregistered.
import * as command from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import { planBuildHost, stageUpload, withRepair, type BuildHost, type RegisterScriptFile } from '../lib/build-host.ts';
import type { HostEmulators } from '../lib/emulators.ts';
import { CONNECT_TIMEOUT_S } from '../lib/ssh.ts';
import { BinfmtCheck } from './binfmt-check.ts';

/** Dial attempts per SSH connection: an unreachable host fails in about 3 x CONNECT_TIMEOUT_S, not the plugin's 10 x 15 s. */
const DIAL_ATTEMPTS = 3;

export interface BinfmtHostArgs {
  /** The build host as the stack config declares it (address, user, sudo, arch, targets, flags, …). */
  buildHost: BuildHost;
  /** Every host arch's extracted emulators; the build host gets those of its own arch. */
  hostEmulators: readonly HostEmulators[];
  /** The register script file, generated once per program. */
  registerScript: RegisterScriptFile;
  /** The SSH private key; it must be a secret (polyarch:sshPrivateKey). */
  privateKey: pulumi.Input<string>;
  /** Local folder for the upload folders (hard links into the emulator cache). */
  uploadDir: string;
}

export class BinfmtHost extends pulumi.ComponentResource {
  /** The build host's name in stack config. */
  public readonly hostName: string;
  /** The binfmt_misc entries registered there, `qemu-<cpu>`. */
  public readonly entries: pulumi.Output<string[]>;
  /** The folder on the host that holds this registration's emulators. */
  public readonly folder: pulumi.Output<string>;
  /** The register command's output from its last create or update. */
  public readonly stdout: pulumi.Output<string>;
  /** What the last refresh that found this host drifted saw ("" if none did). */
  public readonly drift: pulumi.Output<string>;

  constructor(name: string, args: BinfmtHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super('polyarch:index:BinfmtHost', name, {}, opts);
    const b = args.buildHost;
    const plan = planBuildHost(b, args.hostEmulators, args.registerScript);

    const connection: command.types.input.remote.ConnectionArgs = {
      host: b.address,
      port: b.port,
      user: b.user,
      // Secret in its own right, whatever the SDK does with the whole connection.
      privateKey: pulumi.secret(args.privateKey),
      ...(b.hostKey !== undefined && { hostKey: b.hostKey }),
      dialErrorLimit: DIAL_ATTEMPTS,
      perDialTimeout: CONNECT_TIMEOUT_S,
    };

    const check = new BinfmtCheck(
      `${name}-check`,
      { host: b.name, address: b.address, port: b.port, user: b.user, sudo: b.sudo, ...(b.hostKey !== undefined && { hostKey: b.hostKey }), expected: plan.expected },
      { parent: this },
    );

    // The folder lands in the SSH user's home as plan.upload (its local name); a refresh that
    // found files gone replaces the copy, so they are uploaded again.
    const upload = new command.remote.CopyToRemote(
      `${name}-upload`,
      {
        connection,
        source: pulumi.output(stageUpload(plan, args.uploadDir)).apply((dir) => new pulumi.asset.FileArchive(dir)),
        remotePath: '.',
        triggers: [check.reuploads],
      },
      { parent: this },
    );

    const register = new command.remote.Command(
      `${name}-register`,
      {
        connection,
        create: plan.create,
        // A refresh that found drift changes this string, so `up` runs it: re-registers in place.
        update: check.repairs.apply((n) => withRepair(plan.update, n)),
        delete: plan.delete,
        triggers: plan.triggers,
        // The commands never read the previous run's output; left on (the default), the
        // provider asks sshd to set PULUMI_COMMAND_STDOUT/STDERR on every update and delete,
        // which sshd refuses (AcceptEnv) with a warning each time.
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: [upload] },
    );

    this.hostName = b.name;
    this.entries = pulumi.output(plan.entries);
    this.folder = pulumi.output(plan.folder);
    this.stdout = register.stdout;
    this.drift = check.drift;
    this.registerOutputs({ entries: this.entries, folder: this.folder, stdout: this.stdout, drift: this.drift });
  }
}
