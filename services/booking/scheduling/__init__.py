"""Free slots: the pure availability engine, the calendar loader feeding it, booking rules."""
