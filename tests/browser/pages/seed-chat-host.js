// Host code: seed 000's SolidJS `Chat` (its `useWebSocket('/ws/chat')` hook), rendered as the
// seed wrote it; the page only gives it a root.
import { render } from 'solid-js/web';

import { Chat } from './seeds/useWebSocket.tsx';

render(Chat, document.getElementById('app'));
