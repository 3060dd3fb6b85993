"""Booking service (:8001): one package per domain; app.py, worker.py and jobs.py on top."""
