"""The visual interface: the avatar gateway (an actor serving a FastAPI app) and its page.

``avatar.gateway.AvatarGateway`` relays the bus messages a page needs to browsers over a
WebSocket and takes the commands a role may send; ``avatar/static/`` is the page itself (the
twin's face and the operator/trainer console). See README.md, "Avatar and console".
"""
