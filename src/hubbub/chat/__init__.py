"""The rules of chat, over a Store and a Broker, with no HTTP in sight.

One module per concern, so each can be read (and tested) on its own: ``writer`` (group commit
of sends), ``rooms`` (who may see and change a room), ``messages`` (history, edits, reactions,
reads, search), ``activity`` (typing and presence), ``files`` (shared files), ``checks`` (input
rules) and ``publish`` (telling the streams).
"""
