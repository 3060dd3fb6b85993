"""Retell call events: one calls row per call, callbacks for calls that asked for one."""
