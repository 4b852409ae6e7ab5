// The etcd client library as the etcd store uses it: etcd3 and the cockatiel policies it takes,
// in one module so that dist/ can ship them as one bundle of their own (dist/lib/etcd-client.js,
// built by scripts/build.mjs, etcd3's .proto files in dist/proto/) which ./etcd.ts loads only
// when an etcd store is opened: the CNI plugins' bundles and snapshots stay without gRPC.
export {
  Etcd3, GRPCDeadlineExceededError, GRPCOutOfRangeError, GRPCUnavailableError, isRecoverableError,
} from 'etcd3';
export { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
