// dist/lib/vxnet-client.js: what the `vxnet` launcher runs first when vxnetd's CNI socket
// exists (handoff/client.ts); not an executable of its own.
import { runClient } from '../handoff/client';
import { DEFAULT_CNI_SOCKET } from '../handoff/protocol';

runClient(process.env.VXNET_CNI_SOCKET || DEFAULT_CNI_SOCKET);
