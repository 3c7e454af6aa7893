// placeholder: implemented by its subsystem's owner
