// Host code: seed 000's SolidJS `Notifications` (its `useSSE('/api/sse')` hook), rendered as the
// seed wrote it; the page only gives it a root.
import { render } from 'solid-js/web';

import { Notifications } from './seeds/Notifications.tsx';

render(Notifications, document.getElementById('app'));
