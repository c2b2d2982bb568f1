// One build host over SSH: upload the emulators for its arch and the register script
// (remote.CopyToRemote), then one remote.Command whose create registers the binfmt_misc
// entries, whose update re-registers what changed and whose delete unregisters them.
// lib/build-host.ts plans the files and the shell strings, and says why a replacement
// can never leave the host unregistered.
import * as command from '@pulumi/command';
import * as pulumi from '@pulumi/pulumi';
import { planBuildHost, type BuildHost, type RegisterScriptFile } from '../lib/build-host.ts';
import type { HostEmulators } from '../lib/emulators.ts';

export interface BinfmtHostArgs {
  /** The build host as the stack config declares it (address, user, sudo, arch, targets, flags, …). */
  buildHost: BuildHost;
  /** Every host arch's extracted emulators; the build host gets those of its own arch. */
  hostEmulators: readonly HostEmulators[];
  /** The register script file, generated once per program. */
  registerScript: RegisterScriptFile;
  /** The SSH private key; it must be a secret (polyarch:sshPrivateKey). */
  privateKey: pulumi.Input<string>;
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
    };

    const copies = plan.files.map(
      (f) =>
        new command.remote.CopyToRemote(
          `${name}-copy-${f.name}`,
          { connection, source: new pulumi.asset.FileAsset(f.local), remotePath: f.remote },
          { parent: this },
        ),
    );

    const register = new command.remote.Command(
      `${name}-register`,
      {
        connection,
        create: plan.create,
        update: plan.update,
        delete: plan.delete,
        triggers: plan.triggers,
        // The commands never read the previous run's output; left on (the default), the
        // provider asks sshd to set PULUMI_COMMAND_STDOUT/STDERR on every update and delete,
        // which sshd refuses (AcceptEnv) with a warning each time.
        addPreviousOutputInEnv: false,
      },
      { parent: this, dependsOn: copies },
    );

    this.hostName = b.name;
    this.entries = pulumi.output(plan.entries);
    this.folder = pulumi.output(plan.folder);
    this.stdout = register.stdout;
    this.registerOutputs({ entries: this.entries, folder: this.folder, stdout: this.stdout });
  }
}
