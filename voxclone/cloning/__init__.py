"""The cloning pipeline: collect a speaker's audio, build a voice, keep it in the library."""
