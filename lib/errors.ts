// One error family for every entry point: each error carries its CNI code when it is created,
// `cni/` prints it as the CNI error JSON and `cnm/` as Docker's {"Err": msg}.

export class VxnetError extends Error {
  static override readonly name: string = 'VxnetError';
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, message: string, details?: string) {
    super(message);
    this.code = code;
    this.details = details;
    this.name = (this.constructor as typeof VxnetError).name;
  }
}

/** CNI code 1: the config's cniVersion is not one this plugin speaks. */
export class IncompatibleVersion extends VxnetError {
  static override readonly name = 'IncompatibleVersion';
  constructor(message: string, details?: string) { super(1, message, details); }
}

/** CNI code 2: a field this plugin does not support. */
export class UnsupportedField extends VxnetError {
  static override readonly name = 'UnsupportedField';
  constructor(message: string, details?: string) { super(2, message, details); }
}

/** CNI code 4: a CNI_* environment variable is missing or invalid. */
export class InvalidEnvironment extends VxnetError {
  static override readonly name = 'InvalidEnvironment';
  constructor(message: string, details?: string) { super(4, message, details); }
}

/** CNI code 5: an I/O failure (files, sockets, the store's disk). */
export class IoFailure extends VxnetError {
  static override readonly name = 'IoFailure';
  constructor(message: string, details?: string) { super(5, message, details); }
}

/** CNI code 6: stdin (or a request body) is not valid JSON of the expected shape. */
export class DecodingFailure extends VxnetError {
  static override readonly name = 'DecodingFailure';
  constructor(message: string, details?: string) { super(6, message, details); }
}

/** CNI code 7: the network configuration is invalid; the message names the field. */
export class InvalidNetworkConfig extends VxnetError {
  static override readonly name = 'InvalidNetworkConfig';
  constructor(message: string, details?: string) { super(7, message, details); }
}

/** CNI code 8: the network namespace is missing or not a namespace. */
export class InvalidNetns extends VxnetError {
  static override readonly name = 'InvalidNetns';
  constructor(message: string, details?: string) { super(8, message, details); }
}

/** CNI code 11: transient; the runtime should retry. */
export class TryAgainLater extends VxnetError {
  static override readonly name = 'TryAgainLater';
  constructor(message: string, details?: string) { super(11, message, details); }
}

/** CNI code 50 (STATUS): the plugin cannot serve ADDs now, e.g. the store is unusable. */
export class PluginNotAvailable extends VxnetError {
  static override readonly name = 'PluginNotAvailable';
  constructor(message: string, details?: string) { super(50, message, details); }
}

/** vxnet code 100: no free address left in a pool; the message names the pool. */
export class PoolExhausted extends VxnetError {
  static override readonly name = 'PoolExhausted';
  constructor(message: string, details?: string) { super(100, message, details); }
}

/** vxnet code 101: a requested static address cannot be given; the message says why. */
export class AddressUnavailable extends VxnetError {
  static override readonly name = 'AddressUnavailable';
  constructor(message: string, details?: string) { super(101, message, details); }
}

/** vxnet code 102: CHECK found the container's interface, addresses or routes drifted. */
export class AttachmentDrifted extends VxnetError {
  static override readonly name = 'AttachmentDrifted';
  constructor(message: string, details?: string) { super(102, message, details); }
}

/** vxnet code 103: a delegated plugin (another IPAM, ...) failed; its error is the details. */
export class DelegateFailed extends VxnetError {
  static override readonly name = 'DelegateFailed';
  constructor(message: string, details?: string) { super(103, message, details); }
}

/** vxnet code 104: a kernel operation (netlink, nftables) failed. */
export class DatapathFailure extends VxnetError {
  static override readonly name = 'DatapathFailure';
  constructor(message: string, details?: string) { super(104, message, details); }
}

/** vxnet code 105: two definitions of one network disagree (subnet, mode, ...). */
export class NetworkConflict extends VxnetError {
  static override readonly name = 'NetworkConflict';
  constructor(message: string, details?: string) { super(105, message, details); }
}

/** vxnet code 106: the named object (network, address, allocation) does not exist. */
export class NotFound extends VxnetError {
  static override readonly name = 'NotFound';
  constructor(message: string, details?: string) { super(106, message, details); }
}

/** vxnet code 107: the object is still in use (a network whose blocks live hosts hold, ...). */
export class NetworkInUse extends VxnetError {
  static override readonly name = 'NetworkInUse';
  constructor(message: string, details?: string) { super(107, message, details); }
}

/** vxnet code 108: a DNS name (an endpoint's name, network, service, port name) that cannot be served; the message says why. */
export class InvalidName extends VxnetError {
  static override readonly name = 'InvalidName';
  constructor(message: string, details?: string) { super(108, message, details); }
}

/** vxnet code 109: a VIP label (`VIP_<n>`), range or weight that cannot be used; the message says why. */
export class InvalidVip extends VxnetError {
  static override readonly name = 'InvalidVip';
  constructor(message: string, details?: string) { super(109, message, details); }
}

/** Anything not already a VxnetError becomes code 999 with its message kept. */
export function asVxnetError(err: unknown): VxnetError {
  if (err instanceof VxnetError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new VxnetError(999, message);
}
