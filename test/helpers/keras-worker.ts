// The paced worker (test/replay/paced-worker.ts) with the token-sequences dataset registered: a real worker process
// (training in the worker itself, as a library user's worker trains) that can run the converted Keras text classifier.
import { registerTokenSequences } from './token-sequences';

registerTokenSequences();
void import('../replay/paced-worker');
