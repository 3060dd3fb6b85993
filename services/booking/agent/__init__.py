"""The Retell voice agent: its functions and endpoints, caller identity, inputs, speech."""
