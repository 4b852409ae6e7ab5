// A wrong command line, in any of vxnet's programs: the program prints "NAME: <message>" and
// exits 2. Not a VxnetError: nothing was attempted, so there is no CNI code to carry.
export class UsageError extends Error {
  static override readonly name = 'UsageError';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
