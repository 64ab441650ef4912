import { useState, useEffect } from 'react';

function useChatRoom(roomId, userId) {
    const [messages, setMessages] = useState([]);
    const [connected, setConnected] = useState(false);
    
    useEffect(() => {
        const eventSource = new EventSource(
            `/chat/room/${roomId}/events?user_id=${userId}`
        );
        
        eventSource.onopen = () => setConnected(true);
        eventSource.onclose = () => setConnected(false);
        eventSource.onmessage = (event) => {
            const message = JSON.parse(event.data);
            setMessages(prev => [...prev, message]);
        };
        
        return () => eventSource.close();
    }, [roomId, userId]);
    
    const sendMessage = async (text) => {
        await fetch('/chat/messages', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({
                room_id: roomId,
                user_id: userId,
                message: text
            })
        });
    };
    
    return { messages, connected, sendMessage };
}
