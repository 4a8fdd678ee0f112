"""What residents do, for both faces: sign up, verify, follow their links, manage, export
and erase their data; the limits on it; and the SMS keywords STOP and START."""
