// A failure the user fixes (stack config, lockfile, an unreachable server, a full disk), as
// opposed to a bug. Its message is the whole report: one line naming the key, file or URL. The
// CLI prints it after `error:`; the program stops with it alone, without a stack trace
// (components/stack-config.ts). lib/ stays free of Pulumi, so the program maps it there.
export class UserError extends Error {
  override name = 'UserError';
}
