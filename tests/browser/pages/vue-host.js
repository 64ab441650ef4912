// Host code: mount the seed's ChatRoom.vue. The component reads `this.roomId` without declaring
// it; a global property supplies it. It sends no identity: in trust mode the server gives the
// browser a guest cookie.
import { createApp } from 'vue';

import { roomId } from './params.js';
import ChatRoom from './seeds/ChatRoom.vue';

const app = createApp(ChatRoom);
app.config.globalProperties.roomId = roomId;
app.mount('#app');
