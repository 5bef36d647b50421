"""The Gradio demo of LatentForensics (UI only: every model step is a call into lf_core)."""
