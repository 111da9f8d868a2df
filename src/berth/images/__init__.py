"""berth.images"""
