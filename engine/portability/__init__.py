"""A concept outside conceptlab: in a user's own diffusers pipeline, and through other models' image spaces."""
