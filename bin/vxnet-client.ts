// dist/lib/vxnet-client.js: what the `vxnet` launcher runs first when vxnetd's CNI socket
// exists (cni/client.ts); not an executable of its own.
import { runClient } from '../cni/client';
import { DEFAULT_CNI_SOCKET } from '../cni/handoff';

runClient(process.env.VXNET_CNI_SOCKET || DEFAULT_CNI_SOCKET);
