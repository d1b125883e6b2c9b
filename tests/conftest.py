"""Test session set-up: nothing phones home, whatever the test imports first."""

from fl_protocol.telemetry import disable_phone_home

disable_phone_home()
