"""Local stand-ins of the platforms, mail, LLM and dependency APIs that
Omnify talks to (see ../README.md). `server.build()` makes the server;
`client.Standin` drives it from tests."""
